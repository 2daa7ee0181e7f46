#!/usr/bin/env bash
# Build a real Debian root file system, as a device's firmware would carry
# it, and ext4 and squashfs images of it, for the real-firmware tests
# (tests/realfw.rs) and the benchmark's boot-time row.
#
#   tests/firmware/debian-rootfs.sh CACHE_DIR KIND
#
# KIND is one of
#   systemd   bookworm minbase + systemd, systemd-sysv, dbus
#   sysvinit  bookworm minbase + sysvinit-core
#
# The result is CACHE_DIR/debian-bookworm-KIND-<key>/ with
#   root/             the tree (mmdebstrap --variant=minbase, amd64)
#   rootfs.ext4       mkfs.ext4 -d of it
#   rootfs.squashfs   mksquashfs of it
# and its path is printed on stdout. <key> is a hash of the suite, the
# architecture, the variant, the package list and this script, so a change
# to any of them builds anew; otherwise the cached build is used as it is.
# Concurrent callers wait for each other (one lock per KIND); an older
# build of the same KIND is removed when a new one is made. Anything that
# keeps it from building (no mmdebstrap, no network, no space) is an error
# with one line saying what, never a silent skip.
#
# What a device's image has that a bare bootstrap lacks: its own hostname
# (/etc/hostname, /etc/hosts), a root account that logs in on the console
# with an empty password, an empty machine-id (filled in at boot), no
# resolv.conf or hostname of the build machine. The sysvinit image gets a
# getty on /dev/console instead of tty1-6 (a device has a serial console,
# no virtual terminals).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me="$here/$(basename "$0")"
cache=${1:?usage: debian-rootfs.sh CACHE_DIR systemd|sysvinit}
kind=${2:?usage: debian-rootfs.sh CACHE_DIR systemd|sysvinit}
suite=bookworm
arch=amd64
variant=minbase

die() {
  echo "debian-rootfs.sh: $*" >&2
  exit 1
}

case $kind in
  systemd) packages=systemd,systemd-sysv,dbus ;;
  sysvinit) packages=sysvinit-core ;;
  *) die "unknown kind '$kind': give systemd or sysvinit" ;;
esac

for tool in mmdebstrap mkfs.ext4 mksquashfs flock sha256sum apt-get; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/deps.sh (mmdebstrap, e2fsprogs, squashfs-tools)"
done
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap's root mode, the tree's owners): run it as root"

. "$here/debian-mirror.sh"

# The script by its content, not its path: every checkout shares the cache.
key=$(printf '%s\n' "$suite" "$arch" "$variant" "$packages" "$(sha256sum <"$me")" | sha256sum | cut -c1-16)
mkdir -p "$cache" || die "cannot create $cache"
cache=$(cd "$cache" && pwd)
out="$cache/debian-$suite-$kind-$key"

exec 9>"$cache/debian-$suite-$kind.lock"
flock 9
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

mirror=$(debian_mirror)
# What an earlier version of this script, or a killed run, left.
rm -rf "$cache/debian-$suite-$kind-"*
work="$out.tmp"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "debian-rootfs.sh: building $suite $variant + $packages ($arch) from $mirror into $out" >&2

hostname="fw-$kind"
# Run inside mmdebstrap once the packages are installed; $1 is the tree.
customize=$(
  cat <<EOF
set -e
echo $hostname >"\$1/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t$hostname\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"\$1/etc/hosts"
chroot "\$1" passwd --delete root >/dev/null
: >"\$1/etc/machine-id"
rm -f "\$1/var/lib/dbus/machine-id"
: >"\$1/etc/resolv.conf"
if [ -f "\$1/etc/inittab" ]; then
  sed -i -e 's|^\([1-6]:23:respawn:/sbin/getty.*\)|#\1|' "\$1/etc/inittab"
  echo 'co:2345:respawn:/sbin/agetty --noclear --keep-baud console 115200,38400,9600 vt100' >>"\$1/etc/inittab"
fi
rm -rf "\$1"/var/lib/apt/lists/* "\$1"/var/cache/apt/*.bin "\$1"/var/log/*.log
EOF
)

# Documentation, manuals and translations: a device's image leaves them out.
mmdebstrap --variant="$variant" --architectures="$arch" --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="$customize" \
  "$suite" "$work/root" "$mirror" >"$work/mmdebstrap.log" 2>&1 || {
  tail -n 30 "$work/mmdebstrap.log" >&2
  die "mmdebstrap of $suite + $packages failed (the end of its log is above)"
}
case $kind in
  systemd) init=lib/systemd/systemd ;;
  sysvinit) init=sbin/init ;;
esac
[ -x "$work/root/$init" ] || die "the tree has no /$init"

chroot "$work/root" dpkg-query -W -f '${Package} ${Version}\n' >"$work/versions" ||
  die "cannot list the tree's packages"

# ext4: the tree's size plus a quarter and 32 MiB for the file system's own.
kib=$(du -sk "$work/root" | cut -f1)
truncate -s "$(((kib + kib / 4 + 32768) * 1024))" "$work/rootfs.ext4"
mkfs.ext4 -q -F -L rootfs -d "$work/root" "$work/rootfs.ext4" ||
  die "mkfs.ext4 -d of the tree failed"
# zstd at a low level: as small as gzip's, and built in a second or two
# rather than a minute.
mksquashfs "$work/root" "$work/rootfs.squashfs" -noappend -no-progress \
  -comp zstd -Xcompression-level 3 >"$work/mksquashfs.log" 2>&1 || {
  cat "$work/mksquashfs.log" >&2
  die "mksquashfs of the tree failed (its output is above)"
}

echo "$(($(date +%s) - start))" >"$work/build-seconds"
touch "$work/.complete"
mv "$work" "$out"
trap - EXIT
echo "debian-rootfs.sh: built $out in $(cat "$out/build-seconds") s" >&2
echo "$out"
