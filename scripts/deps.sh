#!/usr/bin/env bash
# Install what fwrun's build, demo and tests need, from Debian's packages.
# Idempotent: installs only what is missing. Needs root.
set -euo pipefail

packages=(
  busybox-static   # the test firmware's userland
  e2fsprogs        # mkfs.ext2/ext4 -d for the test images
  squashfs-tools   # mksquashfs for the test images
  gcc libc6-dev    # a static helper in the test firmware
  util-linux       # losetup, unshare, findmnt
  iproute2         # ip: the network tests' bridge, tap and route checks
  curl             # the published-port tests' and benchmark's HTTP client
  python3          # scripts/check-layout.py
  apparmor         # apparmor_parser and /etc/apparmor.d/abi
  qemu-system-x86  # the AppArmor VM tier
  cpio xz-utils    # its initramfs, and Debian's kernel unpacked
  binutils         # objcopy, to strip the binary the VM tier boots
  zsh fish man-db  # the completion and man page tests
  bubblewrap systemd-container hyperfine  # the benchmark
  podman runc      # the container tests
  mmdebstrap       # the container tests' image, the real-firmware tests' Debian images
  python3-yaml python3-jsonschema  # the container docs' snippet checks
  qemu-user-static # the foreign-architecture tier's emulators (arm64, ARM, MIPS, POWER)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages (${missing[*]}): run as root to install them" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || {
  echo "deps.sh: cargo is missing: install a Rust toolchain (rustup)" >&2
  exit 1
}
# The musl target fwrun is built for (scripts/target.sh). Without it (no
# rustup, no network) the build falls back to glibc, which is slower to
# start but otherwise the same.
musl="$(uname -m)-unknown-linux-musl"
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  rustup target add "$musl" >/dev/null 2>&1 \
    || echo "deps.sh: could not add the Rust target $musl: fwrun is built with glibc" >&2
fi
