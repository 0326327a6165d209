#!/usr/bin/env bash
# An OpenSSH server on 127.0.0.1 only, for the KVM provider's remote-host tests: a cluster host
# reached as qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&no_verify=1, so libvirt, qemu-img,
# scp and tgtadm really go through ssh. Its own host key, config, client key and authorized_keys
# live under /var/lib/nepho-test/sshd; the system's sshd configuration is not touched.
#
# Usage: scripts/setup/sshd.sh start|stop|status [PORT]    (PORT default 2222)
#   start prints nothing on stdout; `status` prints the client key's path (exit 3 when stopped).
# Env: NEPHO_SSHD_TIMEOUT (seconds, default 20)
set -euo pipefail

log() { printf '[sshd] %s\n' "$*" >&2; }
die() { printf '[sshd] ERROR: %s\n' "$*" >&2; exit 1; }
# A process that runs (a zombie nobody reaped has exited).
live() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }

cmd=${1:-}
PORT=${2:-2222}
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT"
TIMEOUT=${NEPHO_SSHD_TIMEOUT:-20}
DIR=/var/lib/nepho-test/sshd
PIDFILE=/run/nepho-sshd-$PORT.pid
CONFIG=$DIR/sshd_config-$PORT
ADDR=127.0.0.1

pid_alive() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  # A pid file that survived its process (a restored machine) may name another program now.
  [ -n "$pid" ] && live "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = sshd ]
}
listening() { [[ "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" == *"$ADDR:$PORT"* ]]; }
answers() {
  timeout 10 ssh -p "$PORT" -i "$DIR/client_key" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$ADDR" true >/dev/null 2>&1
}

case "$cmd" in
  start)
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ -x /usr/sbin/sshd ] || die "sshd is missing: apt-get install openssh-server (scripts/setup/packages.sh)"
    if pid_alive && answers; then
      exit 0
    fi
    listening && die "something else already listens on $ADDR:$PORT"
    install -d -m 0700 "$DIR"
    install -d -m 0755 /run/sshd
    [ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/host_ed25519"
    [ -f "$DIR/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C nepho-test-client -f "$DIR/client_key"
    install -m 0600 "$DIR/client_key.pub" "$DIR/authorized_keys"
    cat >"$CONFIG" <<EOF
# nepho test sshd (scripts/setup/sshd.sh): loopback only, key login for root only.
ListenAddress $ADDR
Port $PORT
HostKey $DIR/host_ed25519
PidFile $PIDFILE
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
Subsystem sftp internal-sftp
EOF
    /usr/sbin/sshd -t -f "$CONFIG" || die "sshd rejects $CONFIG"
    /usr/sbin/sshd -f "$CONFIG" -E "/var/log/nepho-sshd-$PORT.log"
    deadline=$((SECONDS + TIMEOUT))
    until answers; do
      [ $SECONDS -lt $deadline ] || die "sshd on $ADDR:$PORT did not answer within ${TIMEOUT}s (see /var/log/nepho-sshd-$PORT.log)"
      sleep 0.2
    done
    log "listening on $ADDR:$PORT (client key $DIR/client_key)"
    ;;
  stop)
    if pid_alive; then
      kill "$(cat "$PIDFILE")"
      deadline=$((SECONDS + TIMEOUT))
      while pid_alive; do
        [ $SECONDS -lt $deadline ] || { kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true; break; }
        sleep 0.2
      done
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if pid_alive && answers; then
      echo "$DIR/client_key"
    else
      exit 3
    fi
    ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
