#!/bin/sh
# What a device's rcS does, unconditionally, as real ones are written: mount
# proc, sysfs, devtmpfs, devpts and a tmpfs, remount the root read-write,
# and (some do) remount /sys and /proc/sys read-write or unmount /proc/sys.
# The first group must succeed without a word; the second must be refused;
# afterwards fwrun's constraints must still hold. One "ok"/"not ok" line per
# check; the exit status is the number of failures. HOST_PROC (from the
# test): the names in the host's /proc.
fails=0
say() { if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi; }
# Succeeds and prints nothing.
quiet() {
  d=$1; shift
  out=$("$@" 2>&1); st=$?
  if [ "$st" = 0 ] && [ -z "$out" ]; then say ok "$d"; else say no "$d (exit $st: $out)"; fi
}
# Fails.
refused() { d=$1; shift; if "$@" >/dev/null 2>&1; then say no "$d"; else say ok "$d"; fi; }
holds() { d=$1; shift; if "$@" >/dev/null 2>&1; then say ok "$d"; else say no "$d"; fi; }
mounted_ro() { awk -v m="$1" '$5 == m { split($6, o, ","); ro = (o[1] == "ro") } END { exit !ro }' /proc/self/mountinfo; }
# A masked /proc file is /dev/null bound over it: a character device 1:3
# that reads empty.
masked() { [ -c "$1" ] && [ "$(stat -c %t:%T "$1")" = 1:3 ] && [ -z "$(head -c 16 "$1")" ]; }
# masked_here FILE: masked if the host's kernel has it (HOST_PROC, from the
# test, names what the host's /proc holds), else absent here too.
masked_here() {
  [ -n "$HOST_PROC" ] || return 1
  case " $HOST_PROC " in
    *" ${1#/proc/} "*) masked "$1" ;;
    *) [ ! -e "$1" ] ;;
  esac
}
no_dangerous_nodes() {
  [ -z "$(find /dev -type b)" ] &&
  [ -z "$(ls /dev | grep -E '^(mem|kmem|port|watchdog|rtc|sd|hd|vd|nvme|loop|mmcblk|dm-|md|sr|mtd)')" ]
}
write_back() { v=$(cat "$1") && echo "$v" > "$1"; }

quiet "mount -t proc proc /proc" mount -t proc proc /proc
quiet "mount -t sysfs sysfs /sys" mount -t sysfs sysfs /sys
quiet "mount -t devtmpfs devtmpfs /dev" mount -t devtmpfs devtmpfs /dev
quiet "mkdir -p /dev/pts" mkdir -p /dev/pts
quiet "mount -t devpts devpts /dev/pts" mount -t devpts devpts /dev/pts
quiet "mount -t tmpfs tmpfs /tmp" mount -t tmpfs tmpfs /tmp
quiet "mount -o remount,rw /" mount -o remount,rw /
refused "mount -o remount,rw /sys is refused" mount -o remount,rw /sys
refused "mount -o remount,rw /proc/sys is refused" mount -o remount,rw /proc/sys
refused "umount /proc/sys is refused" umount /proc/sys

holds "/proc/sys is still read-only" mounted_ro /proc/sys
refused "/proc/sys cannot be written" write_back /proc/sys/kernel/ctrl-alt-del
holds "/sys is still read-only" mounted_ro /sys
holds "/proc/kallsyms is still masked" masked /proc/kallsyms
holds "/proc/kcore is still masked (absent if the kernel has none)" masked_here /proc/kcore
holds "/dev holds no block, mem, watchdog or rtc node" no_dangerous_nodes
holds "/dev/null still works" sh -c 'echo x > /dev/null'
holds "the root is writable" sh -c 'echo written > /etc/rcs-written'
echo "failures=$fails"
exit "$fails"
