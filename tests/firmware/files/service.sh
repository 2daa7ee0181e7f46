#!/bin/sh
# A device that stays up until it is stopped: its rcS, a web server when
# HTTPD=ADDR:PORT is set (busybox httpd), then a login prompt on the
# console. SIGTERM ends it, as a device's shutdown would.
trap 'echo "fwtest: stopping"; exit 0' TERM
/etc/init.d/rcS
if [ -n "$HTTPD" ]; then
  mkdir -p /www && echo "fwtest is up" > /www/index.html
  httpd -p "$HTTPD" -h /www && echo "fwtest: httpd on $HTTPD"
fi
printf 'fwtest login: '
while :; do
  sleep 1 &
  wait $!
done
