#!/usr/bin/env bash
# Build a foreign-architecture test firmware from Debian's busybox-static
# for ARCH (a Debian architecture: arm64, armel, armhf, mipsel, mips64el,
# ppc64el, i386): a device-style root (busybox init, an inittab, an rcS
# that mounts what a device mounts, says what it sees and powers off),
# every applet linked to /bin/busybox, as a squashfs image.
#
#   tests/firmware/busybox-foreign.sh ARCH CACHE_DIR OUTDIR
#
# The .deb is fetched by an apt of its own (its own lists, state, sources
# and architecture list, in a temporary directory; only the machine's
# Acquire settings, its proxies, are borrowed): the machine's dpkg
# architectures, sources and package state are never changed, so nothing
# is left to undo, and a killed run leaves only a temporary directory that
# the next run removes. It is kept in CACHE_DIR/busybox-ARCH-<hash of this
# script>/, named with its version, so only the first run (or one after
# this script changed) downloads. OUTDIR/ARCH.squashfs is the image,
# OUTDIR/root/ its tree, rebuilt only when the .deb or this script
# changed. Idempotent; concurrent runs wait for each other. Fails (exit 1,
# one line) when it cannot build the image.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me="$here/$(basename "$0")"
arch=${1:?usage: busybox-foreign.sh ARCH CACHE_DIR OUTDIR}
cache=${2:?usage: busybox-foreign.sh ARCH CACHE_DIR OUTDIR}
out=${3:?usage: busybox-foreign.sh ARCH CACHE_DIR OUTDIR}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "busybox-foreign.sh: $*" >&2
  exit 1
}

# The ELF machine (e_machine, as od prints its two bytes in the file's
# byte order) and class each architecture's busybox must have.
case "$arch" in
  arm64) elf="b700 2" ;;
  armel | armhf) elf="2800 1" ;;
  mipsel) elf="0800 1" ;;
  mips64el) elf="0800 2" ;;
  ppc64el) elf="1500 2" ;;
  i386) elf="0300 1" ;;
  *) die "unknown architecture '$arch': arm64, armel, armhf, mipsel, mips64el, ppc64el or i386" ;;
esac

for tool in apt-get apt-config dpkg-deb mksquashfs flock sha256sum busybox; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt, dpkg, squashfs-tools and busybox-static provide them)"
done
[ -r "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"

. "$here/debian-mirror.sh"

key=$(cat "$me" "$here/debian-mirror.sh" | sha256sum | cut -c1-16)
mkdir -p "$cache" "$out" || die "cannot create $cache or $out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)
debs="$cache/busybox-$arch-$key"

# 1. The .deb, once per version of this script.
exec 8>"$debs.lock"
flock 8
if [ ! -f "$debs/.complete" ]; then
  mirror=$(debian_mirror)
  rm -rf "$debs".tmp.* # what a killed run left
  work=$(mktemp -d "$debs.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  private_apt "$work" "$mirror" bookworm "$arch"
  (cd "$work/debs" && apt-get "${apt[@]}" -q download "busybox-static:$arch") >"$work/download.log" 2>&1 || {
    cat "$work/download.log" >&2
    die "downloading busybox-static:$arch from $mirror failed (log above)"
  }
  compgen -G "$work/debs/busybox-static_*_$arch.deb" >/dev/null || die "busybox-static:$arch was not downloaded"
  touch "$work/debs/.complete"
  rm -rf "$debs"
  mv "$work/debs" "$debs"
  rm -rf "$work"
  trap - EXIT
fi
flock -u 8

# 2. The tree and the image, once per .deb.
exec 9>"$out/.lock"
flock 9
deb=$(compgen -G "$debs/busybox-static_*_$arch.deb" | head -n1)
stamp="$key $(basename "$deb")"
img="$out/$arch.squashfs"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$img" ]; then
  exit 0
fi
rm -rf "$out/root" "$img" "$out/.stamp" "$out/x"
mkdir -p "$out/x"
dpkg-deb -x "$deb" "$out/x" || die "extracting $deb failed"
bb="$out/x/bin/busybox"
[ -f "$bb" ] || die "$deb holds no /bin/busybox"
read -r machine class <<<"$elf"
[ "$(od -An -tx1 -j18 -N2 "$bb" | tr -d ' \n')" = "$machine" ] &&
  [ "$(od -An -tu1 -j4 -N1 "$bb" | tr -d ' \n')" = "$class" ] ||
  die "$bb is not a program for $arch"
root="$out/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,tmp,run,root,mnt,var/log}
cp "$bb" "$root/bin/busybox"
rm -rf "$out/x"
# Every applet as a link to /bin/busybox where busybox puts it. The
# foreign busybox cannot be asked without its emulator; the machine's own
# busybox-static is the same Debian release, built the same way.
busybox --list-full | while read -r applet; do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
ln -sf ../bin/busybox "$root/sbin/init"
# A #! script whose interpreter is the foreign busybox.
printf '#!/bin/sh\necho "script on $(uname -m)"\n' >"$root/bin/arch-script"
chmod 0755 "$root/bin/arch-script"
cat >"$root/etc/inittab" <<INITTAB
# A device's inittab: the rcS, a line when up, power off at the end.
::sysinit:/etc/init.d/rcS
::once:/bin/sh -c 'echo "$arch firmware up on \$(uname -m)"; [ -n "\$FW_STAY_UP" ] || poweroff'
::shutdown:/bin/echo "$arch firmware: shutting down"
INITTAB
cat >"$root/etc/init.d/rcS" <<'RCS'
#!/bin/sh
# A device's rcS: mount what a device mounts, say what it sees.
mount -t proc proc /proc
grep -q " /sys " /proc/mounts || mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "rcS ran: machine $(uname -m), pid $$, $(ls /sys/class/net | wc -l) interfaces"
RCS
chmod 0755 "$root/etc/init.d/rcS"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
mksquashfs "$root" "$img.tmp" -noappend -all-root -quiet >/dev/null || die "mksquashfs of $root failed"
mv "$img.tmp" "$img"
echo "$stamp" >"$out/.stamp"
