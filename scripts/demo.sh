#!/usr/bin/env bash
# Set up and boot the demo firmware: install what is missing, build fwrun
# and the busybox test firmware, and boot it from its ext2 image. Its rcS
# mounts /proc and /sys, says what it sees, and powers the device off.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
target=$(scripts/target.sh)
cargo build --release --locked --target "$target"
bash tests/firmware/build.sh target/fwtest
exec "target/$target/release/fwrun" --firmware target/fwtest/fw.ext2 "$@" -- /sbin/init
