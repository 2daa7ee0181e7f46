#!/usr/bin/env bash
# Build the test firmware: a busybox-static root file system whose init
# scripts check the world they boot into and print "ok"/"not ok" lines, as
# a directory and as ext2, ext4 and squashfs images.
#
#   tests/firmware/build.sh OUTDIR
#
# Produces OUTDIR/root/ (the directory firmware), OUTDIR/fw.ext2,
# OUTDIR/fw.ext4 and OUTDIR/fw.sqfs. Rebuilds only when this folder changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

exec 9>"$out/.lock"
flock 9

stamp=$(cat "$here"/build.sh "$here"/files/* "$here"/*.c | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] \
   && [ -f "$out/fw.ext2" ] && [ -f "$out/fw.ext4" ] && [ -f "$out/fw.sqfs" ]; then
  exit 0
fi

for tool in busybox mkfs.ext2 mkfs.ext4 mksquashfs gcc; do
  command -v "$tool" >/dev/null || {
    echo "build.sh: $tool is missing: apt-get install busybox-static e2fsprogs squashfs-tools gcc libc6-dev" >&2
    exit 1
  }
done
bb=$(command -v busybox)
file -L "$bb" 2>/dev/null | grep -q 'dynamically linked' && {
  echo "build.sh: $bb is not static: apt-get install busybox-static" >&2
  exit 1
}

root="$out/root"
rm -rf "$root" "$out"/fw.*
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,tmp,run,root,var/log,test}
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
# Every applet as a link to /bin/busybox, where busybox itself puts it.
"$bb" --list-full | while read -r applet; do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
ln -sf /bin/busybox "$root/sbin/init"

install -m 0644 "$here/files/inittab" "$root/etc/inittab"
install -m 0755 "$here/files/rcS" "$root/etc/init.d/rcS"
for f in "$here"/files/*.sh; do
  install -m 0755 "$f" "$root/test/$(basename "$f")"
done
echo "fwtest" > "$root/etc/hostname"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
echo "image" > "$root/etc/fw-version"
# One terminfo entry (a placeholder: fwrun only looks for the file), so that
# a TERM the firmware knows is passed as it is, and any other replaced.
mkdir -p "$root/usr/share/terminfo/f"
echo "placeholder terminfo entry" > "$root/usr/share/terminfo/f/fwtest-term"
# Used by tests: a file the firmware may not execute, an absolute symlink to
# the init (resolved inside the firmware, never on the host), a dangling one.
echo "not a program" > "$root/test/not-executable"
chmod 0644 "$root/test/not-executable"
ln -s /test/check.sh "$root/test/abs-link"
ln -s /test/nowhere "$root/test/dangling"
# A device node of the image's own (the null device, harmless if it ever
# opened): inside the firmware it must open nothing, the root being nodev.
mknod "$root/test/null-node" c 1 3
chmod 0666 "$root/test/null-node"
# An init that dies of a real SIGSEGV (a pid namespace's init cannot be
# killed by a signal sent from inside, so the fault must be real).
gcc -static -Os -o "$root/test/segv" "$here/segv.c"
# Mounts proc the way util-linux 2.39+ does: the new mount API first, then
# mount(2) when that answers ENOSYS.
gcc -static -Os -o "$root/test/newmount" "$here/newmount.c"
# A remount as mount(2) is asked, with the path as given (the probes of
# userns.sh: paths through magic links).
gcc -static -Os -o "$root/test/remount" "$here/remount.c"
# A UDP echo (busybox's nc has no UDP): the published-port tests.
gcc -static -Os -o "$root/test/udpecho" "$here/udpecho.c"
# Each system call fwrun promises to refuse, tried with harmless arguments.
gcc -static -Os -o "$root/test/calls" "$here/calls.c"

img() { truncate -s "$2" "$1"; }
img "$out/fw.ext2" 12M
mkfs.ext2 -q -F -L fwtest -d "$root" "$out/fw.ext2"
img "$out/fw.ext4" 16M
mkfs.ext4 -q -F -L fwtest -d "$root" "$out/fw.ext4"
mksquashfs "$root" "$out/fw.sqfs" -noappend -all-root -quiet >/dev/null
echo "$stamp" > "$out/.stamp"
