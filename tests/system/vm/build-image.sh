#!/bin/bash
# Stage 2 of the system-test VM: from the cached base rootfs (build-base.sh), a throwaway copy
# with the whisperd .deb installed (dpkg -i: its Debian dependencies are already in the base,
# so no network), the test user, the test payload (guest/) and the speech samples; then an
# ext4 image made straight from the directory (mkfs.ext4 -d) plus the kernel and initrd.
#   build-image.sh BASE_DIR DEB WORK_DIR SPEECH_WAV "EXPECTED WORDS"
set -euo pipefail
BASE=$1; DEB=$2; W=$3; SPEECH=$4; WORDS=$5
HERE=$(cd "$(dirname "$0")" && pwd)
R=$W/rootfs
T0=$(date +%s)
rm -rf "$R"; mkdir -p "$W"
cp -a "$BASE" "$R"; rm -f "$R/.complete"
echo systest > "$R/etc/hostname"
chroot "$R" passwd -d root >/dev/null
# the desktop user: member of 'input' to read keyboards (as docs/keys.md says)
chroot "$R" useradd -m -u 1000 -s /bin/bash -G input user
# a local seat session for 'user' (autologin on tty1), so that the package's uaccess rule is
# what gives access to /dev/uinput, as on a desktop
mkdir -p "$R/etc/systemd/system/getty@tty1.service.d"
cat > "$R/etc/systemd/system/getty@tty1.service.d/autologin.conf" <<'U'
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-p -f -- \\u' --noclear --autologin user %I $TERM
U
# boot speed: no serial getty, no timers
for u in serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
         e2scrub_reap.service fstrim.timer man-db.timer systemd-timesyncd.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
echo '/dev/vda / ext4 rw,noatime 0 1' > "$R/etc/fstab"
# the package, installed as apt would (maintainer scripts run: py compile, user-unit enablement)
cp "$DEB" "$R/tmp/whisperd.deb"
mount -t proc proc "$R/proc"
trap 'umount "$R/proc" 2>/dev/null || true' EXIT
T1=$(date +%s)
chroot "$R" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/whisperd.deb > "$W/dpkg-install.log" 2>&1 \
  || { cat "$W/dpkg-install.log" >&2; exit 1; }
T2=$(date +%s)
umount "$R/proc"; trap - EXIT
rm -f "$R/tmp/whisperd.deb"
# PulseAudio: a virtual microphone for every session (shared/recipes/audio)
mkdir -p "$R/etc/pulse/default.pa.d"
cat > "$R/etc/pulse/default.pa.d/90-systest-virtmic.pa" <<'PA'
unload-module module-suspend-on-idle
load-module module-null-sink sink_name=virtspk rate=16000 channels=1 sink_properties=device.description=VirtualSpeaker
load-module module-remap-source master=virtspk.monitor source_name=virtmic source_properties=device.description=VirtualMic
set-default-sink virtspk
set-default-source virtmic
PA
# the test payload: a oneshot system service that runs it after boot and powers off
mkdir -p "$R/opt/systest"
cp "$HERE"/guest/*.sh "$HERE"/guest/*.py "$R/opt/systest/"
cp "$SPEECH" "$R/opt/systest/speech.wav"
echo "$WORDS" > "$R/opt/systest/words.txt"
chmod 755 "$R/opt/systest" "$R"/opt/systest/*.sh "$R"/opt/systest/*.py
chmod 644 "$R/opt/systest/speech.wav" "$R/opt/systest/words.txt"
install -m644 "$HERE/guest/systest.service" "$R/etc/systemd/system/systest.service"
ln -sf /etc/systemd/system/systest.service "$R/etc/systemd/system/multi-user.target.wants/systest.service"
rm -f "$R/opt/systest/systest.service"
cp "$R"/boot/vmlinuz-* "$W/vmlinuz"; cp "$R"/boot/initrd.img-* "$W/initrd.img"
rm -f "$W/rootfs.img"; truncate -s 4G "$W/rootfs.img"
mkfs.ext4 -q -F -L systest -d "$R" "$W/rootfs.img"
rm -rf "$R"
T3=$(date +%s)
echo "image: copy+configure $((T1-T0)) s, dpkg -i $((T2-T1)) s, payload+mkfs $((T3-T2)) s" >&2
