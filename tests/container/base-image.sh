#!/usr/bin/env bash
# Build (once) the container image the container tests run fwrun in:
# Debian bookworm minbase plus apparmor (apparmor_parser), made with
# mmdebstrap and imported into podman, since no image registry is
# reachable.
#
#   tests/container/base-image.sh CACHE_DIR
#
# The tarball is kept as CACHE_DIR/container-base-<key>.tar, the key made
# from the suite and the package list, so it is built again only when they
# change. The podman image (named fwrun-test-base:<key>) is imported again
# whenever it is missing. Prints the image's name. Concurrent runs wait for
# each other.
set -euo pipefail

cache=${1:?usage: base-image.sh CACHE_DIR}
suite=bookworm
include=apparmor
key=$(printf '%s %s minbase\n' "$suite" "$include" | sha256sum | cut -c1-12)
image="localhost/fwrun-test-base:$key"

die() {
  echo "base-image.sh: $*" >&2
  exit 1
}
for tool in mmdebstrap podman flock sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/deps.sh"
done
mkdir -p "$cache" || die "cannot create $cache"
tar="$cache/container-base-$key.tar"

exec 8>"$tar.lock"
flock 8
if [ ! -s "$tar" ]; then
  mmdebstrap --quiet --format=tar --variant=minbase --include="$include" "$suite" "$tar.part" >&2 ||
    die "mmdebstrap of $suite failed (is Debian's archive reachable?)"
  mv "$tar.part" "$tar"
fi
if ! podman image exists "$image"; then
  podman import --quiet "$tar" "$image" >/dev/null || die "podman import of $tar failed"
fi
echo "$image"
