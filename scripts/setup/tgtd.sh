#!/usr/bin/env bash
# Manage a userspace iSCSI target daemon (tgt) bound to 127.0.0.1 only.
#
# Usage: scripts/setup/tgtd.sh start|stop|status [PORT]     (PORT default 3260)
#
# - start:  start `tgtd -f --iscsi portal=127.0.0.1:PORT` in the background (pidfile
#           /run/nepho-tgtd-PORT.pid, log /var/log/nepho-tgtd-PORT.log) unless already
#           running; waits (timeout) until the portal listens and tgtadm answers.
# - stop:   delete every target (tgtd ignores SIGTERM while targets exist), then
#           `tgtadm --op delete --mode system`; waits (timeout) for the process to exit.
# - status: exit 0 and print targets if running, exit 3 if not.
#
# The management channel: PORT 3260 uses tgtd's default control port 0 (so a plain
# `tgtadm --lld iscsi ...` talks to it); any other PORT uses control port PORT
# (`tgtadm -C PORT ...`). Override with NEPHO_TGT_CONTROL. Prints nothing on stdout
# except for `status`.
# Env: NEPHO_TGT_TIMEOUT (seconds, default 20)
set -euo pipefail

log() { printf '[tgtd] %s\n' "$*" >&2; }
die() { printf '[tgtd] ERROR: %s\n' "$*" >&2; exit 1; }
# A process that runs (a zombie nobody reaped has exited).
live() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }

cmd=${1:-}
PORT=${2:-3260}
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT"
if [ -n "${NEPHO_TGT_CONTROL:-}" ]; then CTL=$NEPHO_TGT_CONTROL
elif [ "$PORT" = 3260 ]; then CTL=0
else CTL=$PORT; fi
TIMEOUT=${NEPHO_TGT_TIMEOUT:-20}
PIDFILE=/run/nepho-tgtd-$PORT.pid
LOGFILE=/var/log/nepho-tgtd-$PORT.log
ADDR=127.0.0.1

tgtadm_() { tgtadm -C "$CTL" --lld iscsi "$@"; }

pid_alive() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && live "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = tgtd ]
}
listening() { [[ "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" == *"$ADDR:$PORT"* ]]; }
answers() { timeout 5 tgtadm -C "$CTL" --op show --mode system >/dev/null 2>&1; }

target_ids() {
  tgtadm_ --op show --mode target 2>/dev/null | sed -n 's/^Target \([0-9]\+\):.*/\1/p'
}

case "$cmd" in
  start)
    [ "$(id -u)" = 0 ] || die "must run as root"
    if pid_alive && answers; then
      log "already running (pid $(cat "$PIDFILE"), portal $ADDR:$PORT, control port $CTL)"
      exit 0
    fi
    if listening; then
      die "something else already listens on $ADDR:$PORT"
    fi
    if [ -S /var/run/tgtd/socket."$CTL" ] && answers; then
      die "another tgtd already owns control port $CTL (use NEPHO_TGT_CONTROL or another PORT)"
    fi
    mkdir -p /var/run/tgtd "$(dirname "$LOGFILE")"
    log "starting tgtd on $ADDR:$PORT (control port $CTL)"
    setsid tgtd -f -C "$CTL" --iscsi portal="$ADDR:$PORT" </dev/null >>"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
    t0=$SECONDS
    until listening && answers; do
      pid_alive || die "tgtd exited at start; see $LOGFILE"
      (( SECONDS - t0 < TIMEOUT )) || die "tgtd not ready after ${TIMEOUT}s; see $LOGFILE"
      sleep 0.2
    done
    # make sure it listens on loopback only
    if [ -n "$(ss -Hltn "sport = :$PORT" | awk -v a="$ADDR:$PORT" '$4 != a')" ]; then
      die "tgtd listens on something other than $ADDR:$PORT"
    fi
    log "ready (pid $(cat "$PIDFILE"))"
    ;;
  stop)
    [ "$(id -u)" = 0 ] || die "must run as root"
    if ! pid_alive; then
      log "not running"
      rm -f "$PIDFILE"
      exit 0
    fi
    pid=$(cat "$PIDFILE")
    for tid in $(target_ids); do
      log "deleting target $tid"
      tgtadm_ --op delete --mode target --tid "$tid" --force || true
    done
    tgtadm -C "$CTL" --op delete --mode system >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    t0=$SECONDS
    while live "$pid"; do
      if (( SECONDS - t0 >= TIMEOUT )); then
        log "tgtd (pid $pid) did not exit within ${TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
        break
      fi
      sleep 0.2
    done
    rm -f "$PIDFILE"
    log "stopped"
    ;;
  status)
    if pid_alive && answers; then
      echo "tgtd running: pid $(cat "$PIDFILE"), portal $ADDR:$PORT, control port $CTL"
      tgtadm_ --op show --mode target
      exit 0
    fi
    echo "tgtd not running (portal $ADDR:$PORT)"
    exit 3
    ;;
  *)
    sed -n '2,19p' "$0" >&2
    exit 2
    ;;
esac
