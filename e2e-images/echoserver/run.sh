#!/bin/sh
# A self-signed certificate for the HTTPS port, then nginx in the foreground.
set -e
mkdir -p /certs
if [ ! -f /certs/certificate.crt ]; then
  openssl req -x509 -nodes -days 365 -newkey rsa:2048 -subj "/CN=echoserver" \
    -keyout /certs/privateKey.key -out /certs/certificate.crt >/dev/null 2>&1
fi
exec nginx "$@"
