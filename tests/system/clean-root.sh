#!/bin/bash
# The README's two commands on a Debian 12 that has never seen this project:
#   clean-root.sh WORK_DIR [PYTEST ARGS...]
# 1. a bare Debian 12 root (debootstrap --variant=minbase: no Python, no compiler, nothing of
#    ours), cached by debootstrap.sh and used read-only as the lower layer of an overlay, so
#    each run starts from the same clean state;
# 2. a `git clone` of this repository's HEAD (or $WHISPERD_CLEAN_ROOT_REF) into /root/whisperd of that root, the test audio
#    copied beside it as /root/shared/audio (the layout a developer has);
# 3. inside it (chroot in private mount and PID namespaces, a clean environment, network to
#    the package registries), as a new user would:
#        bash scripts/install.sh
#        bash scripts/test.sh -m "not system" [PYTEST ARGS]
#    test.sh also runs tests/system/setup.sh there, which must install on a bare machine.
# Prints "@@STEP name seconds rc" lines; exits non-zero when a step fails.
# Downloads are cached between runs (apt's .debs and pip's wheels under $CACHE); the result
# does not depend on them.
set -euo pipefail
WORK=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${WHISPERD_SYSTEST_CACHE:-/var/cache/whisperd-systest}
AUDIO=${WHISPERD_TEST_AUDIO:-$REPO/../shared/audio}
PYTEST_ARGS=("$@")

t=$SECONDS
BASE=$("$HERE/debootstrap.sh" clean)
echo "@@STEP debootstrap $((SECONDS - t)) 0"

# A fresh upper layer over the cached root: the root itself is never changed.
mkdir -p "$WORK/upper" "$WORK/overlay-work" "$WORK/root" "$CACHE/apt-archives" "$CACHE/pip"
ROOT=$WORK/root
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/overlay-work" "$ROOT"
cleanup() { umount -R "$ROOT" 2>/dev/null || umount -l "$ROOT" 2>/dev/null || true; }
trap cleanup EXIT

t=$SECONDS
# WHISPERD_CLEAN_ROOT_REF: another commit to test (e.g. one that breaks install.sh on purpose)
REF=$(git -C "$REPO" rev-parse "${WHISPERD_CLEAN_ROOT_REF:-HEAD}")
git clone -q --no-hardlinks "$REPO" "$ROOT/root/whisperd"
git -C "$ROOT/root/whisperd" checkout -q "$REF"
echo "clean-root.sh: cloned $(git -C "$ROOT/root/whisperd" log -1 --format='%h %s' | cut -c1-80)"
if [ -d "$AUDIO" ]; then
  mkdir -p "$ROOT/root/shared"
  cp -r "$AUDIO" "$ROOT/root/shared/audio"
else
  echo "clean-root.sh: no test audio at $AUDIO: the tests that need it will skip" >&2
fi
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The one thing taken from this machine's environment: when its network needs a CA bundle of
# its own for HTTPS (PIP_CERT, e.g. an intercepting proxy), pip in the root gets a copy of it.
export PIP_CERT_INSIDE=""
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  mkdir -p "$ROOT/etc/ssl"; cp -L "$PIP_CERT" "$ROOT/etc/ssl/host-network-ca.crt"
  PIP_CERT_INSIDE=/etc/ssl/host-network-ca.crt
fi
echo "@@STEP clone $((SECONDS - t)) 0"

# Inside: private mount and PID namespaces (every process it starts dies with it, every
# mount goes with it); the download caches bound in; a minimal, clean environment.
inside() {
  unshare --mount --pid --fork --kill-child /bin/bash -c '
    set -e
    R=$1; CACHE=$2; shift 2
    mount -t proc proc "$R/proc"
    mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
    mount -t tmpfs -o mode=755 tmpfs "$R/run"
    mkdir -p "$R/root/.cache/pip"
    mount --bind "$CACHE/apt-archives" "$R/var/cache/apt/archives"
    mount --bind "$CACHE/pip" "$R/root/.cache/pip"
    exec chroot "$R" /usr/bin/env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CI="${CI:-}" \
      ${PIP_CERT_INSIDE:+PIP_CERT=$PIP_CERT_INSIDE} \
      /bin/bash -c "cd /root/whisperd && $*"
  ' inside "$ROOT" "$CACHE" "$@"
}

step() {
  local name=$1; shift
  local t=$SECONDS rc=0
  echo "clean-root.sh: ==== $name: $*"
  inside "$@" || rc=$?
  echo "@@STEP $name $((SECONDS - t)) $rc"
  return "$rc"
}

step install "bash scripts/install.sh"
step test "bash scripts/test.sh -m 'not system' ${PYTEST_ARGS[*]@Q}"
