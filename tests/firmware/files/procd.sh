#!/bin/sh
# A stand-in for OpenWrt's procd, in each respect fwrun relies on:
# - its signals: SIGUSR2 (and SIGPWR) power off, SIGUSR1 halts, SIGTERM and
#   SIGINT reboot;
# - its early log lines go to /dev/kmsg, as its ulog does before syslog;
# - its console: the last console= of /proc/cmdline if that node exists
#   (else it asks nowhere, as procd's askconsole skips a missing one), or
#   /dev/console when the command line names none;
# - at shutdown its init.d/umount unmounts every mount it can, deepest
#   first;
# - its state machine's lines, among them the one procd's binary carries
#   and fwrun recognises it by: "- init complete -".
kmsg() { echo "<$1>procd: $2" > /dev/kmsg; }

kmsg 6 "- early -"
tty=$(sed -n 's/.*console=\([^ ,]*\).*/\1/p' /proc/cmdline)
[ -n "$tty" ] || tty=console
if [ -e "/dev/$tty" ]; then
  echo "Please press Enter to activate this console." > "/dev/$tty"
else
  kmsg 4 "skipping $tty"
fi
kmsg 6 "- init -"
echo "procd: cmdline [$(cat /proc/cmdline)]"
kmsg 6 "- init complete -"

shutdown() {
  kmsg 6 "- shutdown -"
  for m in $(cut -d' ' -f2 /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null
  done
  echo "- $2 -"
  "$1" -f
}
trap 'shutdown poweroff "power down"' USR2 PWR
trap 'shutdown halt halt' USR1
trap 'shutdown reboot reboot' TERM INT
echo "procd: up"
while :; do
  sleep 1 &
  wait $!
done
