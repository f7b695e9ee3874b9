#!/bin/bash
# Stage 3: boot the image under QEMU (TCG: no KVM here), 2 vCPUs, 4 GiB, no network at all
# (-nic none: the package must work offline). The payload (guest/run-tests.sh) prints
# @@ lines on the serial console and powers the VM off.
#   run-vm.sh WORK_DIR LOG [TIMEOUT_SECONDS]
set -uo pipefail
W=$1; LOG=$2; TIMEOUT=${3:-1500}
HERE=$(cd "$(dirname "$0")" && pwd)
ACCEL=${WHISPERD_VM_ACCEL:-tcg,thread=multi}
T0=$(date +%s)
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu max -smp 2 -m 4096 -machine q35 \
  -nographic -no-reboot -nic none \
  -kernel "$W/vmlinuz" -initrd "$W/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=0 panic=-1" \
  -drive file="$W/rootfs.img",if=virtio,format=raw \
  </dev/null 2>&1 | python3 "$HERE/tsfilter.py" > "$LOG"
RC=${PIPESTATUS[0]}
echo "qemu rc=$RC wall=$(( $(date +%s)-T0 )) s" >> "$LOG"
exit $RC
