#!/bin/sh
# Under fwrun's AppArmor profile (the VM tier): the firmware mounts its own
# /proc and /sys, as a device's rcS does, and then tries everything a
# firmware must never manage. Each attempt must fail with EACCES or EPERM
# (AppArmor's answer), not merely fail. Then it checks that what a firmware
# normally does still works. Prints ok/not ok lines; exits with the number
# of failures.
fails=0
say() { echo "$1 - $2"; [ "$1" = ok ] || fails=$((fails + 1)); }
# refused DESC CMD...: the command fails, and says it was not allowed.
refused() {
  desc=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then
    say "not ok" "$desc: it was allowed"
  elif echo "$err" | grep -qE 'Permission denied|not permitted'; then
    say ok "$desc is refused"
  else
    say "not ok" "$desc failed for another reason: $err"
  fi
}
# set_clock: date -s, failing when the clock did not change (busybox date
# says why but exits 0).
set_clock() {
  err=$(date -s 2001-01-01 2>&1 >/dev/null)
  [ "$(date +%Y)" = 2001 ] && return 0
  echo "$err" >&2
  return 1
}
works() {
  desc=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then say ok "$desc works"; else say "not ok" "$desc: $err"; fi
}

echo "attr=$(cat /proc/1/attr/current)"
# The firmware's own /proc and /sys: the host's, unmasked and writable, but
# for the profile.
works "mounting its own proc at /proc" sh -c 'umount -l /proc && mount -t proc proc /proc'
works "mounting its own sysfs at /sys" sh -c 'umount -l /sys && mount -t sysfs sysfs /sys'
echo "own-proc=$(awk '$2 == "/proc" && $3 == "proc"' /proc/mounts | wc -l)"

refused "writing /proc/sysrq-trigger" sh -c 'echo h > /proc/sysrq-trigger'
refused "writing /proc/sys/vm/drop_caches" sh -c 'echo 1 > /proc/sys/vm/drop_caches'
refused "writing /proc/sys/kernel/panic" sh -c 'cat /proc/sys/kernel/panic > /proc/sys/kernel/panic'
thp=/sys/kernel/mm/transparent_hugepage/enabled
refused "writing under /sys/kernel" sh -c "sed 's/.*\[\(.*\)\].*/\1/' $thp > $thp"
refused "reading /proc/kcore" head -c 1 /proc/kcore
refused "mknod of a block device in /dev" mknod /dev/sdz b 8 0
refused "mknod of a block device in /tmp" mknod /tmp/sdz b 8 0
refused "mknod of /dev/mem" mknod /dev/mem c 1 1
refused "mknod of a watchdog" mknod /dev/watchdog c 10 130
refused "setting the clock (date -s)" set_clock
refused "loading a module" insmod /test/not-executable
mkdir -p /mnt/p /mnt/s /mnt/d /mnt/t /mnt/pts
refused "mounting proc outside /proc" mount -t proc proc /mnt/p
refused "mounting sysfs outside /sys" mount -t sysfs sysfs /mnt/s
refused "mounting devtmpfs" mount -t devtmpfs devtmpfs /mnt/d

works "mounting tmpfs" mount -t tmpfs tmpfs /mnt/t
works "mounting devpts" mount -t devpts -o newinstance devpts /mnt/pts
works "writing in its root" sh -c 'echo hi > /etc/fw-escape && cat /etc/fw-escape'
works "setting its hostname through its own /proc" sh -c 'echo fw-renamed > /proc/sys/kernel/hostname'
works "running a service" sh -c 'sleep 30 & pid=$!; kill -0 $pid && kill $pid'
works "bringing lo down and up through its own /sys" sh -c 'cat /sys/class/net/lo/mtu > /sys/class/net/lo/mtu'
echo "failures=$fails"
exit "$fails"
