#!/bin/sh
# Run with --allow-mknod: the firmware may make device nodes, yet the path
# rules still refuse the dangerous names in /dev. A node made outside /dev
# escapes the path rules, which is why mknod is denied by default.
# Exits with the number of failures.
fails=0
refused() {
  desc=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then
    echo "not ok - $desc: it was allowed"; fails=$((fails + 1))
  elif echo "$err" | grep -q 'Permission denied'; then
    echo "ok - $desc is refused"
  else
    echo "not ok - $desc failed for another reason: $err"; fails=$((fails + 1))
  fi
}
works() {
  desc=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then echo "ok - $desc works"; else echo "not ok - $desc: $err"; fails=$((fails + 1)); fi
}
works "mknod of a harmless node (/dev/ttyS9)" mknod /dev/ttyS9 c 4 73
works "mknod outside /dev (/tmp/sdz, which the path rules cannot see)" mknod /tmp/sdz b 8 0
refused "mknod of /dev/mem" mknod /dev/mem c 1 1
refused "mknod of a disk in /dev (/dev/sdz)" mknod /dev/sdz b 8 0
refused "mknod of /dev/watchdog" mknod /dev/watchdog c 10 130
refused "mknod of /dev/rtc0" mknod /dev/rtc0 c 253 0
# The firmware unmounts fwrun's /dev: its image's own /dev shows, and a
# node it finds or makes there is still refused by path.
works "unmounting fwrun's /dev" umount -l /dev
refused "mknod of /dev/nvme0n1 under the image's /dev" mknod /dev/nvme0n1 b 259 0
echo "failures=$fails"
exit "$fails"
