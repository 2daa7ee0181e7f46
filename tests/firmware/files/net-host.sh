#!/bin/sh
# Under fwrun --net host with the AppArmor profile (the VM tier): the
# network is the host's, and its settings are not the firmware's to change.
# As a device's rcS would, it mounts its own /proc and /sys, then tries to
# change them. Each write is of a value other than the one there (the VM
# is thrown away), so that one that went through shows: the VM script
# checks the MTU and ip_forward afterwards, and restores them.
#   net-host.sh profile   each refusal must be the profile's (EACCES, EPERM)
#   net-host.sh any       any refusal will do (a read-only /proc/sys too)
# Prints ok/not ok lines; exits with the number of failures.
fails=0
say() { echo "$1 - $2"; [ "$1" = ok ] || fails=$((fails + 1)); }
case $1 in
  profile) answers='Permission denied|not permitted' ;;
  any) answers='Permission denied|not permitted|Read-only file system' ;;
  *) echo "usage: net-host.sh profile|any" >&2; exit 99 ;;
esac
# refused DESC CMD...: the command fails, with one of the answers.
refused() {
  desc=$1; shift
  if err=$("$@" 2>&1 >/dev/null); then
    say "not ok" "$desc: it was allowed"
  elif echo "$err" | grep -qE "$answers"; then
    say ok "$desc is refused"
  else
    say "not ok" "$desc failed for another reason: $err"
  fi
}
# write_other FILE VALUE: write VALUE to FILE, which does not hold it.
write_other() { [ "$(cat "$1")" != "$2" ] && echo "$2" > "$1"; }
fwd=$(cat /proc/sys/net/ipv4/ip_forward)

echo "attr=$(cat /proc/1/attr/current)"
umount -l /proc 2>/dev/null; mount -t proc proc /proc 2>/dev/null
umount -l /sys 2>/dev/null; mount -t sysfs sysfs /sys 2>/dev/null

refused "setting the host's lo MTU (ip link set lo mtu 1400)" ip link set lo mtu 1400
refused "writing /proc/sys/net/ipv4/ip_forward" write_other /proc/sys/net/ipv4/ip_forward $((1 - fwd))
refused "writing /sys/class/net/lo/mtu" write_other /sys/class/net/lo/mtu 1400
echo "failures=$fails"
exit "$fails"
