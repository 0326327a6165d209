#!/bin/sh
# hello provisioner: runs once after cloud-init hands off. POSIX sh, so it also runs on
# busybox-based test guests.
set -eu
greeting="${NEPHO_GREETING:-Hello from nepho}"
printf '%s\n' "$greeting" > /etc/motd
mkdir -p /var/www
printf '<h1>%s</h1>\n' "$greeting" > /var/www/index.html
if command -v busybox >/dev/null 2>&1 && busybox --list 2>/dev/null | grep -qx httpd; then
  busybox httpd -p 80 -h /var/www
elif command -v python3 >/dev/null 2>&1; then
  (cd /var/www && nohup python3 -m http.server 80 >/dev/null 2>&1 &)
fi
echo "hello: provisioned $(hostname)"
