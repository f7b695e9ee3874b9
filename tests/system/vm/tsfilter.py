"""Prefix every line of the VM's serial console with the seconds since QEMU started."""

import sys
import time

t0 = time.time()
for line in sys.stdin.buffer:
    sys.stdout.write(f"[{time.time() - t0:7.2f}] " + line.decode(errors="replace"))
    sys.stdout.flush()
