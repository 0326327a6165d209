#!/bin/sh
# webapp provisioner: configures a machine for its ROLE (web or db). POSIX sh.
set -eu
role="${ROLE:-web}"
mkdir -p /var/www /var/lib/webapp
case "$role" in
  db)
    # A real cloudlet would install PostgreSQL here; the example records its settings.
    printf 'db=%s user=%s\n' "${DB_NAME:-app}" "${DB_USER:-app}" > /var/lib/webapp/db.conf
    [ -n "${DB_PASSWORD:-}" ] && printf 'password set\n' >> /var/lib/webapp/db.conf
    ;;
  web)
    printf '<h1>%s on %s</h1>\n' "${APP_NAME:-webapp}" "$(hostname)" > /var/www/index.html
    printf 'db_host=%s\n' "${DB_HOST:-}" > /var/lib/webapp/web.conf
    if command -v busybox >/dev/null 2>&1 && busybox --list 2>/dev/null | grep -qx httpd; then
      busybox httpd -p 80 -h /var/www
    fi
    ;;
esac
echo "webapp: $role provisioned on $(hostname)"
