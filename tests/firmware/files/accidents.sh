#!/bin/sh
# The accidents a device's firmware commits on a PC, each of which must be
# refused, and for the reason tested: a command that fails for another one
# (a file that is no module, a module loaded already, swap on a tmpfs, a
# node that is not there) proves nothing and is a failure here. Every probe
# is harmless if it is not refused: it writes back the value the host has,
# sets the clock to now, sets a console log level the host restores, makes
# nodes of the read-only loop device behind its own image.
# Environment (from the test): CAD (the host's kernel/ctrl-alt-del), LEVEL
# (a console log level other than the host's, which the test puts back if
# it changed), IMAGE (the image's path on the host), MODULE (a real module
# file inside the firmware, optional).
fails=0
say() { if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi; }
# refused REASON DESC CMD...: CMD fails, and says REASON: "Operation not
# permitted" (EPERM: what fwrun's seccomp filter and mount supervisor
# answer, and the tests check fwrun's report lists the call), "Read-only
# file system" (fwrun's locked read-only mounts).
refused() {
  why=$1 d=$2; shift 2
  if err=$("$@" 2>&1 >/dev/null); then
    say no "$d: it was allowed"
  elif echo "$err" | grep -qF "$why"; then
    say ok "$d"
  else
    say no "$d: failed for another reason than \"$why\": $err"
  fi
}
EPERM="Operation not permitted"
EROFS="Read-only file system"
holds() { d=$1; shift; if "$@" >/dev/null 2>&1; then say ok "$d"; else say no "$d"; fi; }

# As the device's rcS would have done first.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
umount /proc/sys 2>/dev/null

refused "$EROFS" "a global sysctl write" sh -c "echo '$CAD' > /proc/sys/kernel/ctrl-alt-del"
refused "$EROFS" "sysctl -w kernel.ctrl-alt-del" sysctl -w "kernel.ctrl-alt-del=$CAD"
# busybox date prints an error yet exits 0: the test checks the clock.
date -s "@$(date +%s)" >/dev/null 2>&1
echo "# date -s tried"
module=${MODULE:-/tmp/fwrun-test.ko}
[ -n "$MODULE" ] || echo "not a module" > "$module"
refused "$EPERM" "insmod $module" insmod "$module"
loop=
for d in /sys/block/loop*; do
  [ "$(cat "$d/loop/backing_file" 2>/dev/null)" = "$IMAGE" ] && loop=${d##*/}
done
found() { [ -n "$loop" ]; }
holds "found the loop device behind $IMAGE ($loop)" found
majmin=$(cat "/sys/block/$loop/dev" 2>/dev/null)
major=${majmin%%:*}; minor=${majmin##*:}
refused "$EPERM" "mknod of $loop" mknod /root/loop-node b "$major" "$minor"
holds "the refused mknod left no node of $loop" test ! -e /root/loop-node
mkdir -p /mnt/t && mount -t tmpfs t /mnt/t
refused "$EPERM" "mknod of a block device in its own tmpfs" mknod /mnt/t/blk b "$major" "$minor"
holds "the refused mknod left no block device in the tmpfs" test ! -e /mnt/t/blk
refused "$EPERM" "dmesg -n $LEVEL" dmesg -n "$LEVEL"
dd if=/dev/zero of=/tmp/swap bs=1024 count=64 2>/dev/null
refused "$EPERM" "swapon" swapon /tmp/swap
mkdir -p /mnt/d
# busybox mount words EPERM (and EACCES) so; fwrun's report tells them apart.
refused "permission denied (are you root?)" "mount -t debugfs" mount -t debugfs debugfs /mnt/d
rm -f /root/loop-node /mnt/t/blk /tmp/swap
echo "failures=$fails"
exit "$fails"
