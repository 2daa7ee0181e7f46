#!/usr/bin/env bash
# Set up and boot the demo firmware: install what is missing, build fwrun
# and the busybox test firmware, and boot it from its ext2 image. Its rcS
# mounts /proc and /sys, says what it sees, and powers the device off.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
bash tests/firmware/build.sh target/fwtest
exec "target/$(rustc --print host-tuple)/release/fwrun" --firmware target/fwtest/fw.ext2 "$@" -- /sbin/init
