#!/usr/bin/env bash
# Build a foreign-architecture test firmware: Debian's busybox-static for
# arm64 (aarch64) in an ext2 image, every applet linked to /bin/busybox.
#
#   tests/firmware/busybox-arm64.sh CACHE_DIR OUTDIR
#
# The .deb is kept in CACHE_DIR/busybox-arm64-<hash of this script>/, so
# only the first run (or one after this script changed) downloads; the
# machine's own apt configuration, architectures and state are left alone.
# OUTDIR/arm64.ext2 is the image, OUTDIR/root/ its tree. Idempotent;
# concurrent runs wait for each other. Fails (exit 1, one line) when it
# cannot build the image.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me="$here/$(basename "$0")"
cache=${1:?usage: busybox-arm64.sh CACHE_DIR OUTDIR}
out=${2:?usage: busybox-arm64.sh CACHE_DIR OUTDIR}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "busybox-arm64.sh: $*" >&2
  exit 1
}

for tool in apt-get apt-config dpkg-deb mkfs.ext2 flock sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt, dpkg and e2fsprogs provide them)"
done
[ -r "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"

. "$here/debian-mirror.sh"

key=$(sha256sum "$me" | cut -c1-16)
mkdir -p "$cache" "$out" || die "cannot create $cache or $out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)
debs="$cache/busybox-arm64-$key"

# 1. The .deb, once per version of this script.
exec 8>"$debs.lock"
flock 8
if [ ! -f "$debs/.complete" ]; then
  mirror=$(debian_mirror)
  rm -rf "$debs".tmp.* # what a killed run left
  work=$(mktemp -d "$debs.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/parts"
  : >"$work/status"
  # apt of its own, for arm64 only: the machine's way of fetching
  # (Acquire::*: proxies), none of its sources, architectures or state.
  {
    apt-config dump Acquire
    echo "Dir::Etc::Parts \"$work/parts\";"
    echo 'Dir::Etc::Main "/dev/null";'
    echo 'APT::Architecture "arm64";'
    echo 'APT::Architectures { "arm64"; };'
  } >"$work/apt.conf" || die "apt-config cannot read the machine's apt configuration"
  export APT_CONFIG="$work/apt.conf"
  echo "deb [signed-by=$keyring target=Packages] $mirror bookworm main" >"$work/sources.list"
  apt=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::State::status=$work/status"
    -o "Dir::Cache=$work/cache"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${apt[@]}" -q --error-on=any update >"$work/update.log" 2>&1 || {
    cat "$work/update.log" >&2
    die "apt-get update of bookworm (arm64) from $mirror failed (log above)"
  }
  (cd "$work/debs" && apt-get "${apt[@]}" -q download busybox-static:arm64) >"$work/download.log" 2>&1 || {
    cat "$work/download.log" >&2
    die "downloading busybox-static:arm64 from $mirror failed (log above)"
  }
  compgen -G "$work/debs/busybox-static_*_arm64.deb" >/dev/null || die "busybox-static:arm64 was not downloaded"
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
deb=$(compgen -G "$debs/busybox-static_*_arm64.deb" | head -n1)
stamp="$key $(basename "$deb")"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$out/arm64.ext2" ]; then
  exit 0
fi
rm -rf "$out/root" "$out/arm64.ext2" "$out/.stamp" "$out/x"
mkdir -p "$out/x"
dpkg-deb -x "$deb" "$out/x" || die "extracting $deb failed"
bb="$out/x/bin/busybox"
[ -f "$bb" ] || die "$deb holds no /bin/busybox"
# An aarch64 ELF program: class 64, little-endian, machine 183.
[ "$(od -An -tx1 -j18 -N2 "$bb" | tr -d ' \n')" = "b700" ] || die "$bb is not an aarch64 program"
root="$out/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root}
cp "$bb" "$root/bin/busybox"
rm -rf "$out/x"
# The applets' links, as busybox --install -s would make them (it cannot
# run here to list them: name the few the tests and a boot use).
for a in sh ash cat echo ls mount umount uname sleep true false test poweroff reboot halt; do
  ln -s busybox "$root/bin/$a"
done
ln -s ../bin/busybox "$root/sbin/init"
# A #! script whose interpreter is the foreign busybox.
printf '#!/bin/sh\necho "script on $(uname -m)"\n' >"$root/bin/arch-script"
chmod 0755 "$root/bin/arch-script"
printf '::sysinit:/bin/echo "arm64 firmware up on $(/bin/uname -m)"\n' >"$root/etc/inittab"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
truncate -s 8M "$out/arm64.ext2.tmp"
mkfs.ext2 -q -F -d "$root" "$out/arm64.ext2.tmp" || die "mkfs.ext2 of $root failed"
mv "$out/arm64.ext2.tmp" "$out/arm64.ext2"
echo "$stamp" >"$out/.stamp"
