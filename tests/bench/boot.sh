#!/usr/bin/env bash
# Boot time of a real firmware: Debian bookworm minbase with systemd
# (tests/firmware/debian-rootfs.sh), from the start of the launcher to
# systemd's "Reached target multi-user.target" on its console; fwrun
# (the tree as a directory, and its ext4 image) against `systemd-nspawn -b`
# on the same tree, one run of each in turn, the median of 5.
#
#   sudo tests/bench/boot.sh [FWRUN]
#
# FWRUN defaults to target/<host>/release/fwrun (built when missing). Prints a
# Markdown table on stdout; tests/bench/bench.sh includes it in
# RESULTS.md. FWRUN_BOOT_RUNS changes the number of runs of each.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

say() { printf 'boot: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root: run it as 'sudo tests/bench/boot.sh'"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing: apt-get install systemd-container"
runs=${FWRUN_BOOT_RUNS:-5}
rustc=$(command -v rustc || echo "${HOME:-/root}/.cargo/bin/rustc")
fwrun=${1:-target/$("$rustc" --print host-tuple 2>/dev/null || echo "$(uname -m)-unknown-linux-gnu")/release/fwrun}
if [ ! -x "$fwrun" ]; then
  say "building fwrun (cargo build --release)"
  cargo build --release --quiet || die "cargo build --release failed"
fi
img=$(bash tests/firmware/debian-rootfs.sh /var/cache/fwrun-tests systemd) ||
  die "building the Debian systemd image failed"

tmp=$(mktemp -d /tmp/fwrun-boot.XXXXXX)
had_nspawn_state=$([ -e /run/systemd/nspawn ] && echo 1 || echo 0)
# On a cgroup v1/hybrid host nspawn leaves its `payload` and `supervisor`
# cgroups (with the container's init.scope) in the host's hierarchies:
# the ones that were not there before are removed once empty.
nspawn_cgroups() { find /sys/fs/cgroup -maxdepth 2 -type d \( -name payload -o -name supervisor \) 2>/dev/null | sort; }
nspawn_cgroups >"$tmp/cgroups.before"
cleanup() {
  local d
  for d in $(nspawn_cgroups | grep -vxF -f "$tmp/cgroups.before"); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$tmp"
  if [ "$had_nspawn_state" = 0 ]; then rm -rf /run/systemd/nspawn; fi
}
trap cleanup EXIT
# nspawn writes into the tree it boots (/etc/localtime, /etc/resolv.conf,
# the journal): it gets a copy. fwrun never writes the tree it is given.
cp -a "$img/root" "$tmp/nspawn-root"

# time_boot NAME COMMAND...: start COMMAND with its output in a pipe, and
# print the milliseconds until a console line says multi-user.target was
# reached; then stop it with SIGTERM (each launcher's way of asking its
# firmware to power off) and wait for its end.
time_boot() {
  local name=$1 start ms='' line pid
  shift
  rm -f "$tmp/console"
  mkfifo "$tmp/console"
  start=$EPOCHREALTIME
  "$@" <"/dev/null" >"$tmp/console" 2>&1 &
  pid=$!
  exec 7<"$tmp/console"
  while IFS= read -r -t 30 line <&7; do
    case $line in
      *"Multi-User System"*)
        ms=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
        break
        ;;
    esac
  done
  kill -TERM "$pid" 2>/dev/null || true
  cat <&7 >/dev/null
  exec 7<&-
  wait "$pid" || true
  [ -n "$ms" ] || die "$name never said it reached multi-user.target"
  echo "$ms" >>"$tmp/$name"
}

median() { sort -n "$tmp/$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
all() { sort -n "$tmp/$1" | tr '\n' ' ' | sed 's/ $//'; }

fw_dir=("$fwrun" -q --firmware "$img/root" --console pty --stop-signal RTMIN+4 -- /sbin/init)
fw_ext4=("$fwrun" -q --firmware "$img/rootfs.ext4" --console pty --stop-signal RTMIN+4 -- /sbin/init)
nspawn=(systemd-nspawn -q -b -D "$tmp/nspawn-root" --register=no --keep-unit)

# One of each first, not counted: the page cache holds the tree for all.
time_boot warm "${fw_dir[@]}"
time_boot warm "${nspawn[@]}"
for i in $(seq "$runs"); do
  say "run $i of $runs"
  time_boot fwrun-dir "${fw_dir[@]}"
  time_boot fwrun-ext4 "${fw_ext4[@]}"
  time_boot nspawn "${nspawn[@]}"
done

fd=$(median fwrun-dir)
fe=$(median fwrun-ext4)
ns=$(median nspawn)
verdict() { if [ "$1" -le "$2" ]; then echo PASS; else echo MISS; fi; }
# shellcheck disable=SC2016 # the backquotes are Markdown
{
  echo "## Boot time of a real firmware (Debian bookworm minbase + systemd, to multi-user.target)"
  echo
  echo "| what | command | median (ms) | runs (ms) |"
  echo "| --- | --- | ---: | --- |"
  echo "| fwrun, the tree | \`fwrun --firmware root/ --console pty --stop-signal RTMIN+4 -- /sbin/init\` | $fd | $(all fwrun-dir) |"
  echo "| fwrun, its ext4 image | \`fwrun --firmware rootfs.ext4 --console pty --stop-signal RTMIN+4 -- /sbin/init\` | $fe | $(all fwrun-ext4) |"
  echo "| systemd-nspawn, a copy of the tree | \`systemd-nspawn -b -D root/ --register=no --keep-unit\` | $ns | $(all nspawn) |"
  echo
  echo "- $(verdict "$fd" "$ns"): fwrun ≤ systemd-nspawn on the same tree ($fd ms vs $ns ms)"
  echo "- From the launcher's start to the console line \"Reached target … Multi-User System\"; $runs runs of each, in turn; $img."
}
