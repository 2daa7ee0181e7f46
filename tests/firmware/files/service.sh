#!/bin/sh
# A device that stays up until it is stopped: its rcS, a web server when
# HTTPD=ADDR:PORT is set (busybox httpd; BLOB_MB=N adds /blob, N MiB), a
# UDP echo when UDPECHO=PORT is, then a login prompt on the console.
# SIGTERM ends it, as a device's shutdown would.
trap 'echo "fwtest: stopping"; exit 0' TERM
/etc/init.d/rcS
if [ -n "$HTTPD" ]; then
  mkdir -p /www && echo "fwtest is up" > /www/index.html
  [ -n "$BLOB_MB" ] && dd if=/dev/zero of=/www/blob bs=1M count="$BLOB_MB" 2>/dev/null
  httpd -p "$HTTPD" -h /www && echo "fwtest: httpd on $HTTPD"
fi
if [ -n "$UDPECHO" ]; then
  /test/udpecho "$UDPECHO" &
  echo "fwtest: udp echo on $UDPECHO"
fi
printf 'fwtest login: '
while :; do
  sleep 1 &
  wait $!
done
