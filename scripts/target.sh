#!/usr/bin/env bash
# Print the target fwrun is built for: this machine's architecture with
# musl when rustup has that target (scripts/deps.sh adds it), else the
# host's own, with glibc. The scripts export it as CARGO_BUILD_TARGET, so
# that the binary the tests run is the one the demo and the benchmark run,
# and it lives at target/<that target>/.
#
# Why musl: glibc asks the CPU what it is at every program's start (cpuid,
# about 35 times), which in a virtual machine is a trip to the hypervisor
# each time: 0.3-0.4 ms of every run on the benchmark machine. musl asks
# nothing. A plain `cargo build` still gives the glibc build
# (.cargo/config.toml); both are static position-independent executables
# (static-pie: no dynamic loader, an address randomised at every start).
set -euo pipefail
musl="$(uname -m)-unknown-linux-musl"
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  echo "$musl"
else
  rustc --print host-tuple
fi
