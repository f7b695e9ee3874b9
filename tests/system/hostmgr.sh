#!/bin/bash
# A real systemd 252 user manager (and journald) on a host whose PID 1 is not systemd.
#
#   hostmgr.sh start  STATE_DIR   set up the test user, start journald + `systemd --user` in a
#                                 private mount namespace; prints KEY=VALUE lines (UID, HOME, ...)
#   hostmgr.sh user   STATE_DIR CMD...   run CMD as the test user inside that namespace
#   hostmgr.sh root   STATE_DIR CMD...   run CMD as root inside that namespace
#   hostmgr.sh stop   STATE_DIR   stop the manager, journald, the namespace and the cgroups
#
# Adapted from shared/recipes/systemd-user-manager.sh. What makes it work:
# - /run/user/$UID (0700, owned by the user) and a delegated cgroup directory shaped exactly
#   user.slice/user-$UID.slice/user@$UID.service (both hierarchies), chowned to the user; the
#   launching shell sits in it when the manager is exec'd (journald then tags _SYSTEMD_USER_UNIT).
# - In a private mount namespace: tmpfs /run/systemd with /run/systemd/system (sd_booted() true),
#   tmpfs /run/log and /var/log/journal, a standalone journald, `journalctl --flush` so that
#   per-user journal files exist (else `journalctl --user` is refused).
# Nothing on the host is changed except the test user, /run/user/$UID, the cgroup directories
# (removed on stop) and, where the project's interpreter lives under a directory the test user
# cannot traverse (e.g. /root/.pyenv), a traverse-only ACL entry for that user (removed on stop).
set -u
CMD=${1:?start|user|root|stop}; S=${2:?state dir}; shift 2
USERNAME=${WHISPERD_SYSTEST_USER:-whisperd-systest}
mkdir -p "$S"

ns_pid() { cat "$S/ns.pid" 2>/dev/null; }
uenv() {
  local U H; U=$(id -u "$USERNAME"); H=$(getent passwd "$USERNAME" | cut -d: -f6)
  echo HOME=$H USER=$USERNAME LOGNAME=$USERNAME XDG_RUNTIME_DIR=/run/user/$U \
       DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$U/bus PATH=/usr/local/bin:/usr/bin:/bin
}

case $CMD in
start)
  id "$USERNAME" >/dev/null 2>&1 || useradd -m -d /var/tmp/$USERNAME-home -s /bin/bash "$USERNAME" || exit 1
  U=$(id -u "$USERNAME"); G=$(id -g "$USERNAME"); H=$(getent passwd "$USERNAME" | cut -d: -f6)
  # give the user read access to what its units will execute (paths passed in WHISPERD_SYSTEST_PATHS)
  : > "$S/acls"
  for p in ${WHISPERD_SYSTEST_PATHS:-}; do
    d=$p
    while [ "$d" != / ] && [ -n "$d" ]; do
      d=$(dirname "$d")
      if ! setpriv --reuid=$U --regid=$G --clear-groups test -x "$d" 2>/dev/null; then
        setfacl -m u:$USERNAME:x "$d" && echo "$d" >> "$S/acls"
      fi
    done
  done
  sort -u -o "$S/acls" "$S/acls"
  mkdir -p /run/user/$U && chown $U:$G /run/user/$U && chmod 700 /run/user/$U
  for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    [ -d $h ] || continue
    mkdir -p $h/user.slice/user-$U.slice/user@$U.service
    chown -R $U:$G $h/user.slice/user-$U.slice/user@$U.service
  done
  # cgroup2-only hosts: the delegated directory is directly under /sys/fs/cgroup
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    mkdir -p /sys/fs/cgroup/user.slice/user-$U.slice/user@$U.service
    chown -R $U:$G /sys/fs/cgroup/user.slice/user-$U.slice/user@$U.service
  fi
  rm -f "$S/ready" "$S/um.log" "$S/journald.log"
  export U G H USERNAME S
  setsid unshare --mount --propagation private bash -c '
    set -u
    echo $$ > "$S/ns.pid"
    mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system
    mkdir -p /run/log && mount -t tmpfs tmpfs /run/log
    mount -t tmpfs -o mode=755 tmpfs /var/log && mkdir -p -m 2755 /var/log/journal
    chgrp systemd-journal /var/log/journal 2>/dev/null
    /lib/systemd/systemd-journald >"$S/journald.log" 2>&1 & echo $! > "$S/journald.pid"
    for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
    journalctl --flush >/dev/null 2>&1 || kill -USR1 $(cat "$S/journald.pid")
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
      [ -d $h/user.slice/user-$U.slice/user@$U.service ] && echo $BASHPID > $h/user.slice/user-$U.slice/user@$U.service/cgroup.procs 2>/dev/null
    done
    setpriv --reuid=$U --regid=$G --init-groups env -i HOME=$H USER=$USERNAME LOGNAME=$USERNAME \
       PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR=/run/user/$U /lib/systemd/systemd --user \
       >"$S/um.log" 2>&1 & echo $! > "$S/um.pid"
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do echo $BASHPID > $h/cgroup.procs 2>/dev/null; done
    touch "$S/ready"
    wait
  ' </dev/null >"$S/ns.log" 2>&1 &
  for i in $(seq 100); do [ -f "$S/ready" ] && break; sleep 0.05; done
  [ -f "$S/ready" ] || { echo "namespace did not come up: $(cat "$S/ns.log")" >&2; exit 1; }
  for i in $(seq 200); do
    st=$("$0" user "$S" systemctl --user is-system-running 2>/dev/null)
    case $st in running|degraded) break;; esac
    sleep 0.05
  done
  echo "UID=$U"; echo "HOME=$H"; echo "USER=$USERNAME"; echo "STATE=$st"
  case $st in running|degraded) exit 0;; *) echo "user manager not running: $(cat "$S/um.log")" >&2; exit 1;; esac
  ;;
user)
  P=$(ns_pid) || exit 1
  U=$(id -u "$USERNAME"); G=$(id -g "$USERNAME")
  exec nsenter -t "$P" -m setpriv --reuid=$U --regid=$G --init-groups env $(uenv) "$@"
  ;;
root)
  P=$(ns_pid) || exit 1
  exec nsenter -t "$P" -m "$@"
  ;;
stop)
  U=$(id -u "$USERNAME" 2>/dev/null)
  if [ -f "$S/um.pid" ]; then
    "$0" user "$S" systemctl --user exit >/dev/null 2>&1
    for i in $(seq 50); do kill -0 $(cat "$S/um.pid") 2>/dev/null || break; sleep 0.1; done
    kill $(cat "$S/um.pid") 2>/dev/null
  fi
  [ -f "$S/journald.pid" ] && kill $(cat "$S/journald.pid") 2>/dev/null
  for i in $(seq 50); do kill -0 $(ns_pid) 2>/dev/null || break; sleep 0.1; done
  kill $(ns_pid) 2>/dev/null
  if [ -n "$U" ]; then
    # leftovers of the user's services (e.g. a daemon that outlived the manager)
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
      d=$h/user.slice/user-$U.slice
      [ -d $d ] || continue
      for p in $(find $d -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -9 $p 2>/dev/null; done
    done
    sleep 0.2
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
      [ -d $h/user.slice ] && find $h/user.slice -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf /run/user/$U
  fi
  if [ -f "$S/acls" ]; then
    while read -r d; do setfacl -x u:$USERNAME "$d" 2>/dev/null; done < "$S/acls"
    rm -f "$S/acls"
  fi
  rm -f "$S/ns.pid" "$S/um.pid" "$S/journald.pid" "$S/ready"
  ;;
*) echo "unknown command $CMD" >&2; exit 2;;
esac
