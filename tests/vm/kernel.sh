#!/usr/bin/env bash
# kernel.sh CACHE_DIR
#
# Fetch Debian's stock amd64 kernel (the one linux-image-amd64 points at) from
# the package registry and unpack it into CACHE_DIR, leaving:
#   CACHE_DIR/vmlinuz                      the kernel image
#   CACHE_DIR/lib/modules/<version>/...     its modules (modules.dep included)
#   CACHE_DIR/version                       <version>, e.g. 6.1.0-56-amd64
# That kernel has AppArmor built in and enabled, which the host kernel lacks.
#
# Idempotent: if CACHE_DIR already holds a complete unpacked kernel for the
# package the registry currently offers, nothing is downloaded. Without
# registry access, an existing complete cache is reused as it is.
set -euo pipefail

die() { echo "kernel.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 CACHE_DIR"
cache=$1
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# A cache is complete when the marker file written at the very end exists and
# the files it promises are there.
cache_complete() {
    [[ -f $cache/version ]] || return 1
    local ver
    ver=$(<"$cache/version")
    [[ -s $cache/vmlinuz && -f $cache/lib/modules/$ver/modules.dep ]]
}

# Which versioned package does the linux-image-amd64 metapackage depend on?
# `apt-cache depends` prints e.g. "  Depends: linux-image-6.1.0-56-amd64".
resolve_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

pkg=$(resolve_package || true)
if [[ -z $pkg ]]; then
    # The package lists may be missing (fresh container). Refresh them once.
    echo "kernel.sh: linux-image-amd64 unknown to apt, running apt-get update" >&2
    apt-get update -qq >&2 || true
    pkg=$(resolve_package || true)
fi

if [[ -z $pkg ]]; then
    cache_complete && { echo "kernel.sh: registry unavailable, reusing $cache" >&2; exit 0; }
    die "cannot resolve the package behind linux-image-amd64"
fi
ver=${pkg#linux-image-}     # 6.1.0-56-amd64

if cache_complete && [[ $(<"$cache/version") == "$ver" ]]; then
    echo "kernel.sh: $pkg already in $cache" >&2
    exit 0
fi

# Download into a scratch directory (apt-get download writes to the current
# directory) and unpack into a staging directory, then move into place, so an
# interrupted run never leaves a half-filled cache that looks complete.
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# apt drops to the _apt user to download, who cannot write into our
# private scratch directory; download as root instead of warning about it.
apt_opts=(-o APT::Sandbox::User=root)
echo "kernel.sh: downloading $pkg" >&2
if ! (cd "$work" && apt-get download -q "${apt_opts[@]}" "$pkg" >&2); then
    echo "kernel.sh: apt-get download failed, running apt-get update and retrying" >&2
    apt-get update -qq >&2
    (cd "$work" && apt-get download -q "${apt_opts[@]}" "$pkg" >&2)
fi
deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
[[ -n $deb ]] || die "apt-get download left no .deb for $pkg"

echo "kernel.sh: unpacking $(basename "$deb")" >&2
mkdir "$work/root"
dpkg-deb -x "$deb" "$work/root"

[[ -f $work/root/boot/vmlinuz-$ver ]] || die "no boot/vmlinuz-$ver in $deb"
[[ -d $work/root/lib/modules/$ver ]] || die "no lib/modules/$ver in $deb"

# The package ships modules.order and modules.builtin but no modules.dep
# (its postinst runs depmod on the installed system). Generate it against the
# unpacked tree: kmod's depmod if the host has it, else busybox's (run.sh
# needs busybox-static anyway). Both write the same "path: dep-paths" lines.
if [[ ! -f $work/root/lib/modules/$ver/modules.dep ]]; then
    if command -v depmod >/dev/null; then
        depmod -b "$work/root" "$ver"
    else
        busybox depmod -b "$work/root" "$ver"
    fi
fi
[[ -s $work/root/lib/modules/$ver/modules.dep ]] || die "depmod wrote no modules.dep"

# Replace any previous cache content with the new kernel.
rm -rf "$cache/lib" "$cache/vmlinuz" "$cache/version"
mkdir -p "$cache/lib/modules"
mv "$work/root/lib/modules/$ver" "$cache/lib/modules/$ver"
mv "$work/root/boot/vmlinuz-$ver" "$cache/vmlinuz"
echo "$ver" >"$cache/version"   # written last: marks the cache complete
echo "kernel.sh: $pkg ready in $cache" >&2
