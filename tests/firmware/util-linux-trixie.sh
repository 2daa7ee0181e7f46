#!/usr/bin/env bash
# Fetch util-linux's mount from Debian trixie (util-linux 2.41, which tries
# the new mount API before mount(2)) with everything it loads, its own libc
# and loader included, as a tree to lay over the test firmware's root.
#
#   tests/firmware/util-linux-trixie.sh CACHE_DIR OUTDIR
#
# The .debs are kept in CACHE_DIR/util-linux-trixie-<hash of this script>/,
# so only the first run (or one after this script changed) downloads; the
# machine's own apt configuration and state are left alone. OUTDIR/tree/
# gets the extracted files, with lib and lib64 linked to usr/ as on a
# merged-/usr system. Idempotent; concurrent runs wait for each other.
# Remove CACHE_DIR/util-linux-trixie-* to download again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me="$here/$(basename "$0")"
cache=${1:?usage: util-linux-trixie.sh CACHE_DIR OUTDIR}
out=${2:?usage: util-linux-trixie.sh CACHE_DIR OUTDIR}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "util-linux-trixie.sh: $*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg-deb readelf flock sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt, dpkg and binutils provide them)"
done
[ -r "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"

. "$here/debian-mirror.sh"

key=$(cat "$me" "$here/debian-mirror.sh" | sha256sum | cut -c1-16)
mkdir -p "$cache" "$out" || die "cannot create $cache or $out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)
debs="$cache/util-linux-trixie-$key"

# 1. The .debs, once per version of this script.
exec 8>"$debs.lock"
flock 8
if [ ! -f "$debs/.complete" ]; then
  mirror=$(debian_mirror)
  rm -rf "$debs".tmp.* # what a killed run left
  work=$(mktemp -d "$debs.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  private_apt "$work" "$mirror" trixie
  # mount and what it depends on, recursively (libmount1, libblkid1,
  # libselinux1, libpcre2-8-0, libsmartcols1, libc6, ...).
  mapfile -t pkgs < <(
    apt-cache "${apt[@]}" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances mount |
      grep -v '^[ <]' | sort -u
  )
  [ "${#pkgs[@]}" -gt 1 ] || die "trixie's index names no dependencies of mount"
  (cd "$work/debs" && apt-get "${apt[@]}" -q download "${pkgs[@]}") >"$work/download.log" 2>&1 || {
    cat "$work/download.log" >&2
    die "downloading ${pkgs[*]} from trixie failed (log above)"
  }
  for p in "${pkgs[@]}"; do
    compgen -G "$work/debs/${p}_*.deb" >/dev/null || die "$p was not downloaded"
  done
  for d in "$work"/debs/*.deb; do
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$d" || die "$d is unreadable"
  done >"$work/debs/versions"
  touch "$work/debs/.complete"
  rm -rf "$debs"
  mv "$work/debs" "$debs"
  rm -rf "$work"
  trap - EXIT
fi
flock -u 8

# 2. The tree, once per set of .debs.
exec 9>"$out/.lock"
flock 9
tree="$out/tree"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ] && [ -d "$tree" ]; then
  exit 0
fi
rm -rf "$tree" "$out/.stamp"
mkdir -p "$tree"
for d in "$debs"/*.deb; do
  dpkg-deb -x "$d" "$tree" || die "extracting $d failed"
done
# Documentation and iconv modules: nothing here uses them.
rm -rf "$tree/usr/share" "$tree"/usr/lib/*/gconv
ln -s usr/lib "$tree/lib"
ln -s usr/lib64 "$tree/lib64"

# Everything mount loads must be in the tree, not only on this host.
mount="$tree/usr/bin/mount"
[ -x "$mount" ] || die "trixie's mount package has no /usr/bin/mount"
interp=$(readelf -l "$mount" | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
[ -e "$tree$interp" ] || die "mount's loader $interp is not in the tree"
seen=" "
check() {
  local lib path
  for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
    case "$seen" in *" $lib "*) continue ;; esac
    seen="$seen$lib "
    path=$(find "$tree/usr/lib" -name "$lib" -print -quit)
    [ -n "$path" ] || die "$lib, which $(basename "$1") needs, is in none of the packages"
    check "$path"
  done
}
check "$mount"
echo "$key" >"$out/.stamp"
