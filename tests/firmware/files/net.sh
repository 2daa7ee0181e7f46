#!/bin/sh
# A device's network bring-up, as its rcS would do it:
#
#   /test/net.sh ADDR/PREFIX [PEER...]
#
# gives eth0 ADDR/PREFIX, brings it up, serves a page over HTTP (busybox
# httpd on port 80), says "ready", then pings each PEER (after checking that
# the route to it goes over eth0) and says "reached PEER" or "did not reach
# PEER", then "done". It stops on SIGTERM.
trap 'echo stopping; exit 0' TERM
addr=${1:?usage: net.sh ADDR/PREFIX [PEER...]}
shift
mount -t proc proc /proc
ip link show eth0 | grep -q '[<,]UP[,>]' || echo "eth0 was down"
ip addr show dev eth0 | grep -q 'inet ' || echo "eth0 had no address"
ip addr add "$addr" dev eth0 && ip link set eth0 up || echo "not ok: configuring eth0"
mkdir -p /tmp/www
echo "page of $(hostname)" > /tmp/www/index.html
httpd -p 80 -h /tmp/www || echo "not ok: httpd"
echo ready
for peer in "$@"; do
  case "$(ip route get "$peer" 2>&1)" in
    *" dev eth0 "*) ;;
    *) echo "not ok: the route to $peer is not over eth0"; continue ;;
  esac
  n=0
  until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -ge 10 ] && break
  done
  if [ "$n" -lt 10 ]; then echo "reached $peer"; else echo "did not reach $peer"; fi
done
echo done
while :; do
  sleep 1 &
  wait $!
done
