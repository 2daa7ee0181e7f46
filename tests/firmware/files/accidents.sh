#!/bin/sh
# The accidents a device's firmware commits on a PC, each of which must be
# refused. Every probe changes nothing if it is not refused: it writes back
# the value the host has, sets the clock to now, sets the console log level
# it has, makes nodes of the read-only loop device behind its own image.
# Environment (from the test): CAD (the host's kernel/ctrl-alt-del), LEVEL
# (the host's console log level), IMAGE (the image's path on the host),
# MODULE (a real module file inside the firmware, optional).
fails=0
say() { if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi; }
refused() { d=$1; shift; if "$@" >/dev/null 2>&1; then say no "$d"; else say ok "$d"; fi; }
holds() { d=$1; shift; if "$@" >/dev/null 2>&1; then say ok "$d"; else say no "$d"; fi; }

# As the device's rcS would have done first.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
umount /proc/sys 2>/dev/null

refused "a global sysctl write" sh -c "echo '$CAD' > /proc/sys/kernel/ctrl-alt-del"
refused "sysctl -w kernel.ctrl-alt-del" sysctl -w "kernel.ctrl-alt-del=$CAD"
# busybox date prints an error yet exits 0: the test checks the clock.
date -s "@$(date +%s)" >/dev/null 2>&1
echo "# date -s tried"
module=${MODULE:-/tmp/fwrun-test.ko}
[ -n "$MODULE" ] || echo "not a module" > "$module"
refused "insmod $module" insmod "$module"
loop=
for d in /sys/block/loop*; do
  [ "$(cat "$d/loop/backing_file" 2>/dev/null)" = "$IMAGE" ] && loop=${d##*/}
done
found() { [ -n "$loop" ]; }
holds "found the loop device behind $IMAGE ($loop)" found
majmin=$(cat "/sys/block/$loop/dev" 2>/dev/null)
major=${majmin%%:*}; minor=${majmin##*:}
refused "mknod of $loop" mknod /root/loop-node b "$major" "$minor"
refused "a write to $loop" sh -c '[ -b /root/loop-node ] && echo x > /root/loop-node'
mkdir -p /mnt/t && mount -t tmpfs t /mnt/t
refused "mknod of a block device in its own tmpfs" mknod /mnt/t/blk b "$major" "$minor"
refused "a read of a block device in its own tmpfs" sh -c '[ -b /mnt/t/blk ] && head -c 512 /mnt/t/blk'
refused "dmesg -n $LEVEL" dmesg -n "$LEVEL"
dd if=/dev/zero of=/tmp/swap bs=1024 count=64 2>/dev/null
refused "swapon" swapon /tmp/swap
mkdir -p /mnt/d
refused "mount -t debugfs" mount -t debugfs debugfs /mnt/d
rm -f /root/loop-node /mnt/t/blk /tmp/swap
echo "failures=$fails"
exit "$fails"
