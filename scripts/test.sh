#!/usr/bin/env bash
# Run every test: lint, unit tests, the root tests on the host, and the
# AppArmor tests in a VM. Must run as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the tests mount file systems and create namespaces: run them as root" >&2
  exit 1
fi
scripts/deps.sh
CARGO_BUILD_TARGET=$(scripts/target.sh)
export CARGO_BUILD_TARGET
echo "test.sh: building for $CARGO_BUILD_TARGET" >&2
cargo fmt --check
python3 scripts/check-layout.py
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features fault-injection -- -D warnings
# One test at a time within each test binary: the leak check after each
# root test looks at the whole machine. The fault-injection feature lets the
# reliability tests make fwrun fail or die after each named step; release
# builds never have it. --no-fail-fast: every test binary runs even when an
# earlier one fails, and every failure is listed at the end.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --no-fail-fast --features fault-injection -- --test-threads=1 2>&1 \
  | tee "$log" || status=$?
# One closing line for all the test binaries together, then every failed
# test by its binary, and every binary that failed (one that crashed
# lists no test of its own).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
awk '
  /^     Running / { bin = ($2 == "unittests") ? $3 : $2 }
  /^test .* \.\.\. FAILED$/ { printf "FAILED: %s: %s\n", bin, $2 }
  /^error: [0-9]+ targets? failed:$/ { targets = 1; next }
  targets && /^    / { sub(/^ +/, ""); printf "FAILED binary: %s\n", $0; next }
  { targets = 0 }
' "$log"
if [ "$status" != 0 ]; then
  echo "test.sh: some tests failed (listed above); exit $status" >&2
fi
exit "$status"
