#!/usr/bin/env bash
# kernel.sh CACHE_DIR
#
# Fetch Debian's stock amd64 kernel (the one linux-image-amd64 points at) from
# the package registry and unpack it into CACHE_DIR, leaving:
#   CACHE_DIR/vmlinuz                      the kernel image (bzImage)
#   CACHE_DIR/vmlinux                      the same kernel, decompressed (ELF)
#   CACHE_DIR/lib/modules/<version>/...     its modules (modules.dep included)
#   CACHE_DIR/version                       <version>, e.g. 6.1.0-56-amd64
# That kernel has AppArmor built in and enabled, which the host kernel lacks.
#
# Why vmlinux: under TCG, booting the bzImage spends ~4 s in the BIOS and in
# the kernel's own xz decompressor before the first kernel message. The
# decompressed ELF carries a PVH entry note (CONFIG_PVH=y), so qemu can start
# it directly in well under a second.
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

# Decompress the kernel inside a bzImage: find the start of the compressed
# payload by its magic bytes and decompress from there until the stream ends.
# Debian 12 uses xz (CONFIG_KERNEL_XZ); gzip and zstd are tried too.
extract_vmlinux() {
    local bzimage=$1 out=$2 magic_tool magic tool offset
    for magic_tool in '\xfd7zXZ:xz -dc --single-stream' \
        '\x28\xb5\x2f\xfd:zstd -qdc' '\x1f\x8b\x08:gzip -dc'; do
        magic=${magic_tool%%:*} tool=${magic_tool#*:}
        command -v "${tool%% *}" >/dev/null || continue
        # shellcheck disable=SC2013  # one offset per line, no spaces
        for offset in $(LC_ALL=C grep -aboP "$magic" "$bzimage" | cut -d: -f1); do
            # gzip and zstd complain about the bytes after the stream: ignore
            # the status and check what came out instead.
            tail -c +$((offset + 1)) "$bzimage" | $tool >"$out" 2>/dev/null || true
            if [[ $(head -c 4 "$out" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
                return 0
            fi
        done
    done
    rm -f "$out"
    return 1
}

# Add vmlinux next to a vmlinuz that lacks it (atomically, via a temp file).
ensure_vmlinux() {
    [[ -s $cache/vmlinux ]] && return 0
    echo "kernel.sh: decompressing vmlinuz into vmlinux" >&2
    if extract_vmlinux "$cache/vmlinuz" "$cache/.vmlinux.tmp"; then
        mv "$cache/.vmlinux.tmp" "$cache/vmlinux"
    else
        echo "kernel.sh: no compressed kernel found in vmlinuz; run.sh will boot the bzImage" >&2
    fi
}

pkg=$(resolve_package || true)
if [[ -z $pkg ]]; then
    # The package lists may be missing (fresh container). Refresh them once.
    echo "kernel.sh: linux-image-amd64 unknown to apt, running apt-get update" >&2
    apt-get update -qq >&2 || true
    pkg=$(resolve_package || true)
fi

if [[ -z $pkg ]]; then
    cache_complete && { echo "kernel.sh: registry unavailable, reusing $cache" >&2; ensure_vmlinux; exit 0; }
    die "cannot resolve the package behind linux-image-amd64"
fi
ver=${pkg#linux-image-}     # 6.1.0-56-amd64

if cache_complete && [[ $(<"$cache/version") == "$ver" ]]; then
    echo "kernel.sh: $pkg already in $cache" >&2
    ensure_vmlinux
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
# needs busybox-static anyway). Both write "path: dep-paths" lines; run.sh
# works out the load order itself, so their order does not matter.
if [[ ! -f $work/root/lib/modules/$ver/modules.dep ]]; then
    if command -v depmod >/dev/null; then
        depmod -b "$work/root" "$ver"
    else
        busybox depmod -b "$work/root" "$ver"
    fi
fi
[[ -s $work/root/lib/modules/$ver/modules.dep ]] || die "depmod wrote no modules.dep"

# Replace any previous cache content with the new kernel.
rm -rf "${cache:?}/lib" "$cache/vmlinuz" "$cache/vmlinux" "$cache/version"
mkdir -p "$cache/lib/modules"
mv "$work/root/lib/modules/$ver" "$cache/lib/modules/$ver"
mv "$work/root/boot/vmlinuz-$ver" "$cache/vmlinuz"
echo "$ver" >"$cache/version"   # marks the cache complete
ensure_vmlinux
echo "kernel.sh: $pkg ready in $cache" >&2
