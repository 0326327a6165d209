#!/bin/sh
# hello provisioner: runs after cloud-init hands off, and again when `formation:update`
# changes its environment (so every step may find its work done). POSIX sh, so it also runs
# on busybox-based test guests.
set -eu
greeting="${NEPHO_GREETING:-Hello from nepho}"
printf '%s\n' "$greeting" > /etc/motd
mkdir -p /var/www
printf '<h1>%s</h1>\n' "$greeting" > /var/www/index.html
if command -v busybox >/dev/null 2>&1 && busybox --list 2>/dev/null | grep -qx httpd; then
  # Already serving /var/www from an earlier run: the new page is served as it is.
  busybox httpd -p 80 -h /var/www 2>/dev/null || echo "hello: httpd already running"
elif command -v python3 >/dev/null 2>&1; then
  (cd /var/www && nohup python3 -m http.server 80 >/dev/null 2>&1 &)
fi
echo "hello: provisioned $(hostname)"
