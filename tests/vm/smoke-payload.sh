#!/usr/bin/env bash
# smoke-payload.sh OUT_DIR
#
# Build the payload smoke.sh expects in the guest at /payload:
#   smoke.ext4       a small ext4 image (mke2fs defaults: metadata_csum,
#                    so mounting it needs crc32c in the guest kernel)
#   smoke.squashfs   a small squashfs image
# Each holds /hello containing "hello from <kind>". The guest's busybox has
# no mksquashfs and its mke2fs makes only ext2, hence images from the host.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out=$1
mkdir -p "$out"

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT

echo "hello from ext4" >"$tree/hello"
rm -f "$out/smoke.ext4"
mkfs.ext4 -q -F -L smoke -d "$tree" "$out/smoke.ext4" 4M

echo "hello from squashfs" >"$tree/hello"
rm -f "$out/smoke.squashfs"
mksquashfs "$tree" "$out/smoke.squashfs" -quiet -no-progress -all-root >/dev/null
