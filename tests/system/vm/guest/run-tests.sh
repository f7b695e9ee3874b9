#!/bin/bash
# Runs inside the VM as root after boot (systest.service); prints @@ lines on the serial console.
exec 2>&1
echo "@@BEGIN uptime=$(cut -d' ' -f1 /proc/uptime)"
PASS=0; FAIL=0
step() { local n=$1; shift; echo "---- $n"; if "$@"; then echo "@@RESULT $n PASS"; PASS=$((PASS+1)); else echo "@@RESULT $n FAIL"; FAIL=$((FAIL+1)); fi; }
UENV="XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus"
asuser() { runuser -u user -- env $UENV "$@"; }
WORDS=$(cat /opt/systest/words.txt)
has_words() { local t; t=$(echo "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z \n' ' '); for w in $WORDS; do echo " $t " | grep -q " $w " || { echo "missing word: $w"; return 1; }; done; }

echo "@@INFO kernel=$(uname -r) virt=$(systemd-detect-virt) cpus=$(nproc) boot=\"$(systemd-analyze time 2>/dev/null | head -1)\""
step deb_installed bash -c 'dpkg -s whisperd | grep -q "Status: install ok installed"'
step deb_files bash -c 'for f in /usr/bin/whisperd /usr/bin/whisperctl /usr/bin/whisperd-keys \
   /usr/lib/systemd/user/whisperd.socket /usr/lib/systemd/user/whisperd.service \
   /usr/lib/systemd/user/whisperd-keys.service /usr/lib/udev/rules.d/60-whisperd-uinput.rules; do \
   [ -e $f ] || { echo "missing $f"; exit 1; }; done; ls /usr/lib/modules-load.d/ | grep -q . '
step uinput_module_loaded_at_boot bash -c 'grep -q "^uinput " /proc/modules || test -c /dev/uinput'
wait_session() { for i in $(seq 300); do loginctl list-sessions --no-legend 2>/dev/null | grep -q " user .*seat0" && \
   systemctl is-active -q user@1000.service && [ -S /run/user/1000/bus ] && return 0; sleep 0.2; done; loginctl list-sessions; return 1; }
step seat_session wait_session
udevadm settle
step uinput_uaccess_for_seat_user bash -c 'getfacl -p /dev/uinput 2>/dev/null | grep -q "^user:user:rw" || runuser -u user -- test -w /dev/uinput'
if ! runuser -u user -- test -w /dev/uinput; then
  echo "no uinput access for the seat user; granting it by hand so the chain tests can run"; ls -l /dev/uinput
  chmod 666 /dev/uinput
fi
step socket_enabled_for_every_user bash -c "[ \"\$(runuser -u user -- env $UENV systemctl --user is-enabled whisperd.socket)\" = enabled ] && runuser -u user -- env $UENV systemctl --user is-active -q whisperd.socket"
step keys_not_enabled_by_default bash -c "[ \"\$(runuser -u user -- env $UENV systemctl --user is-enabled whisperd-keys.service)\" = disabled ]"
step systemd_analyze_verify asuser systemd-analyze --user verify --man=no /usr/lib/systemd/user/whisperd.socket \
   /usr/lib/systemd/user/whisperd.service /usr/lib/systemd/user/whisperd-keys.service
step daemon_not_running_before_first_use bash -c "! runuser -u user -- env $UENV systemctl --user is-active -q whisperd.service"

# the user's configuration, before whisperd first starts
mkdir -p /home/user/.config/whisperd
cat > /home/user/.config/whisperd/config.toml <<'T'
[daemon]
# one decode per dictation: under TCG every streamed window costs minutes (docs/system-tests.md)
stream_window = 0
# and no drafts during pauses, for the same reason
draft_pause = 0
# as many threads as CTranslate2 would start here (2 vCPUs), without measuring which
# count is faster at the first load: under TCG that measurement alone takes minutes
cpu_threads = 2

[keys]
layout = "us"
language = "en"
# under TCG a transcription takes minutes (docs/system-tests.md)
timeout = 1800.0
T
chown -R user: /home/user/.config

# offline transcription through socket activation, with the bundled model (no network in this VM)
progress() {  # print what the daemon is doing while a long step runs
  while sleep 20; do
    echo "@@PROGRESS $(cut -d' ' -f1 /proc/uptime)s load=$(cut -d' ' -f1 /proc/loadavg)"
  done
}
progress & PROG=$!
T0=$(date +%s.%N)
asuser timeout 120 whisperctl ping; echo "@@TIMING activation_ping_wall=$(python3 -c "print(round($(date +%s.%N)-$T0,1))")"
T0=$(date +%s.%N)
asuser timeout 900 whisperctl --timeout 900 load; echo "@@TIMING model_load_wall=$(python3 -c "print(round($(date +%s.%N)-$T0,1))")"
kill $PROG
asuser whisperctl status
step service_active_after_request asuser systemctl --user is-active -q whisperd.service
PID=$(asuser systemctl --user show -p MainPID --value whisperd.service)
step sandbox_in_effect bash -c "grep -q '^NoNewPrivs:.*1' /proc/$PID/status && grep -q '^Seccomp:.*2' /proc/$PID/status && [ \$(wc -l < /proc/$PID/uid_map) = 1 ] && grep -qE ' / / ro,' /proc/$PID/mountinfo"
echo "@@INFO security=\"$(asuser systemd-analyze --user security whisperd.service --no-pager 2>&1 | tail -1)\""

# dictation: PulseAudio virtual microphone + whisperd-keys + uinput keyboards
step pulseaudio_virtual_mic bash -c "runuser -u user -- env $UENV pactl info | grep -E 'Default (Source|Sink)'; runuser -u user -- env $UENV pactl get-default-source | grep -qx virtmic"
# keep the null sink rendering, so that the monitor (the microphone) delivers a continuous stream
runuser -u user -- env $UENV setsid pacat --playback --latency-msec=30 --device=virtspk --rate=16000 --channels=1 --format=s16le /dev/zero </dev/null >/dev/null 2>&1 &
sleep 1
progress & PROG=$!
/usr/lib/whisperd/venv/bin/python3 /opt/systest/chain.py
# whisperctl transcribe of the same phrase (the model is warm now), through the fast path
# (--fast: a 10 s window instead of 30 s; both paths are compared on the host). Budget:
# 43 s measured for this clip on a loaded machine (a 30 s window took up to 1103 s), so
# 1800 s fails only on a hang.
T0=$(date +%s.%N)
OUT=$(asuser timeout 1900 whisperctl --timeout 1800 transcribe --fast --json /opt/systest/speech.wav); RC=$?
T1=$(date +%s.%N)
echo "$OUT" | head -c 3000; echo
TEXT=$(echo "$OUT" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["text"])' 2>/dev/null)
echo "@@TEXT transcribe $TEXT"
echo "@@TIMING transcribe_wall=$(python3 -c "print(round($T1-$T0,1))") timings=$(echo "$OUT" | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print(json.dumps({k: r.get(k) for k in ("timings","duration","device","model")}, separators=(",",":")))' 2>/dev/null)"
step transcribe_offline bash -c "[ $RC = 0 ] && $(declare -f has_words); WORDS='$WORDS'; has_words \"$TEXT\""
step journal_model_load_and_timings bash -c "runuser -u user -- env $UENV journalctl --user -u whisperd --no-pager -o cat | tee /tmp/wj.txt | tail -8; grep -q 'model loaded in' /tmp/wj.txt && grep -qE 'request .*audio .*decode' /tmp/wj.txt"
kill $PROG
# live typing during the hold, against a stand-in daemon (live_typing.py; its own steps)
/usr/lib/whisperd/venv/bin/python3 /opt/systest/live_typing.py
# dictation by `whisperctl dictate` for a user outside the input group, with the status
# followed (issue 13; no_input_group.py; last: it takes the user out of 'input')
/usr/lib/whisperd/venv/bin/python3 /opt/systest/no_input_group.py
echo "---- whisperd-keys journal"; asuser journalctl --user -u whisperd-keys --no-pager -o cat | tail -40
echo "---- whisperd journal"; asuser journalctl --user -u whisperd --no-pager -o cat | tail -15
echo "@@SUMMARY shell_passed=$PASS shell_failed=$FAIL uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "@@END"
