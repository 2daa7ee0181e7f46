#!/usr/bin/env bash
# fwrun's benchmark: how long `fwrun --firmware FW -- /bin/true` takes end to
# end, next to bubblewrap, systemd-nspawn and a shell script doing the same
# mounts (tests/bench/floor.sh), on the busybox test firmware (ext2 and
# squashfs images, and the directory they were made from); runs that overlap
# another run of the same image (sharing its loop device); fwrun's peak RSS,
# 16 runs of one image in parallel (throughput against bubblewrap's in the
# same harness, and the memory and page cache they add against one run's),
# `fwrun enter` against nsenter, the time of each phase that `fwrun -v`
# reports, and the boot time of a real Debian systemd firmware against
# systemd-nspawn -b (tests/bench/boot.sh).
#
#   sudo tests/bench/bench.sh
#
# Prints a Markdown report and writes it to tests/bench/RESULTS.md. Builds
# fwrun (target/<target>/release/fwrun, the target scripts/target.sh names)
# and the test firmware (target/fwtest/) when needed.
# Leaves nothing behind: no loop device, nothing in /run/fwrun, no process,
# pid namespace or AppArmor profile, no temporary directory; it checks this
# at the end and fails if it is not so. bubblewrap and systemd-nspawn must
# run here: a comparison that could not be made is an error, not a gap.
#
# FWRUN_BENCH_QUICK=1 cuts the number of runs (for trying the script out;
# its figures are not worth keeping).
#
# FWRUN_BENCH_BASELINE=PATH adds an earlier build of fwrun (PATH, its
# binary), timed alternated with this one on the ext2 image: what this
# checkout adds or saves end to end. To measure what the confinement work
# cost, build the commit before it:
#   git worktree add --detach /tmp/fwrun-before ce36d6e
#   (cd /tmp/fwrun-before && cargo build --release)
#   FWRUN_BENCH_BASELINE=/tmp/fwrun-before/target/release/fwrun tests/bench/bench.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (fwrun, bwrap's and nspawn's mounts): run it as 'sudo tests/bench/bench.sh'"

# --- Tools -----------------------------------------------------------------
# Installed from Debian when missing (this is the only thing the script
# changes on the machine besides its own, removed, temporary files).
missing=()
for pair in hyperfine:hyperfine jq:jq bwrap:bubblewrap systemd-nspawn:systemd-container \
            unshare:util-linux losetup:mount /usr/bin/time:time; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || die "could not install ${missing[*]}: apt-get install them"
fi

# --- What is measured ----------------------------------------------------------
# fwrun itself: built when missing. When it exists, cargo still runs (a no-op
# when the binary is up to date) so that the figures belong to the checkout;
# if that build fails (work in progress), the existing binary is measured and
# the report says so.
cargo=$(command -v cargo || echo "${HOME:-/root}/.cargo/bin/cargo")
rustc=$(command -v rustc || echo "${HOME:-/root}/.cargo/bin/rustc")
# Built for the target the tests use (scripts/target.sh: musl where rustup
# has it, else the host's glibc; either is linked statically).
target=$(PATH="$(dirname "$rustc"):$PATH" scripts/target.sh 2>/dev/null || echo "$(uname -m)-unknown-linux-gnu")
export CARGO_BUILD_TARGET=$target
fwrun=target/$target/release/fwrun
build_note=
if [ ! -x "$fwrun" ]; then
  [ -x "$cargo" ] || die "$fwrun is missing and cargo is not in PATH: run cargo build --release first"
  say "building fwrun (cargo build --release)"
  "$cargo" build --release --quiet || die "cargo build --release failed"
elif [ ! -x "$cargo" ]; then
  build_note="cargo not found: measured the existing $fwrun"
elif ! "$cargo" build --release --quiet; then
  build_note="cargo build --release failed: measured the existing $fwrun"
fi
if [ -n "$build_note" ]; then
  build_note="$build_note (built $(date -u -r "$fwrun" '+%Y-%m-%d %H:%M UTC'))"
  say "warning: $build_note"
fi
# A binary just linked sits in the page cache as the linker wrote it, one
# small page at a time; an installed one (a package, cargo install, a
# copy) comes in through readahead in large folios, and its exec faults in
# far fewer of them: 0.18-0.20 ms a run here, on every fwrun figure. So
# fwrun (and the baseline build) is timed as installed: its cached pages
# are written out (the linker's may still be dirty, and those cannot be
# dropped), dropped, and read back in one go.
as_installed() {
  sync "$1" || die "writing out $1"
  dd if="$1" iflag=nocache count=0 status=none || die "dropping the cached pages of $1"
  cat "$1" >/dev/null
}
as_installed "$fwrun"
# alt_in FILE NAME: the median alternate.py gave NAME in FILE.
alt_in() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# The busybox test firmware (the script rebuilds only when its sources changed).
say "building the test firmware (tests/firmware/build.sh target/fwtest)"
bash tests/firmware/build.sh target/fwtest

img=target/fwtest/fw.ext2
sqfs=target/fwtest/fw.sqfs
dir=target/fwtest/root

# --- Runs -----------------------------------------------------------------------
# Enough runs for stable medians; the fast commands get more.
if [ "${FWRUN_BENCH_QUICK:-0}" = 1 ]; then
  fast_runs=20 mid_runs=10 slow_runs=10 warmup=3 phase_runs=5 rss_runs=3 heavy_runs=3 alt_rounds=10
else
  fast_runs=200 mid_runs=100 slow_runs=50 warmup=20 phase_runs=20 rss_runs=20 heavy_runs=10 alt_rounds=100
fi

# --- Leftovers -----------------------------------------------------------
# What a run may leave behind if something is wrong, as far as the host can
# see it: attached loop devices, entries in /run/fwrun, live processes of
# fwrun, bwrap or nspawn, pid namespaces with a live process (a firmware
# that outlived its launcher), fwrun's AppArmor profiles, the host ends of
# its veths (fw-*). Not the mount
# table: fwrun's mounts (and the floor's) live in private mount namespaces
# that the host's table never shows; a leak of them shows as a loop device
# or a process that holds them. Taken before and after, so that another
# user's runs at the start are not blamed on us.
host_pid_ns=$(readlink /proc/self/ns/pid)
leftovers() {
  local p ns
  for p in /sys/block/loop*/loop/backing_file; do
    if [ -r "$p" ]; then
      printf 'loop: %s %s\n' "$(basename "$(dirname "$(dirname "$p")")")" "$(cat "$p")"
    fi
  done
  if [ -d /run/fwrun ]; then
    find /run/fwrun -mindepth 1 -maxdepth 1 | sed 's/^/state: /'
  fi
  find /sys/class/net -mindepth 1 -maxdepth 1 -name 'fw-*' -printf 'interface: %f\n'
  for p in /proc/[0-9]*; do
    # A zombie holds nothing but its pid; a process may end meanwhile.
    if grep -q '^State:.*Z' "$p/status" 2>/dev/null; then continue; fi
    case $(cat "$p/comm" 2>/dev/null) in
      fwrun | bwrap | systemd-nspawn) echo "process: ${p#/proc/} $(cat "$p/comm" 2>/dev/null)" ;;
    esac
    ns=$(readlink "$p/ns/pid" 2>/dev/null) || continue
    [ "$ns" = "$host_pid_ns" ] || echo "pid namespace: $ns"
  done | sort -u
  if [ -r /sys/kernel/security/apparmor/profiles ]; then
    grep '^fwrun' /sys/kernel/security/apparmor/profiles | sed 's/^/profile: /' || true
  fi
}

tmp=$(mktemp -d /tmp/fwrun-bench.XXXXXX)
had_run_fwrun=$([ -e /run/fwrun ] && echo 1 || echo 0)
had_nspawn_state=$([ -e /run/systemd/nspawn ] && echo 1 || echo 0)
# nspawn's `payload` and `supervisor` cgroups, which it leaves in the host's
# hierarchies on a cgroup v1/hybrid host: the new ones are removed once empty.
nspawn_cgroups() { find /sys/fs/cgroup -maxdepth 2 -type d \( -name payload -o -name supervisor \) 2>/dev/null | sort; }
nspawn_cgroups >"$tmp/nspawn-cgroups.before"
cleanup() {
  # The run `fwrun enter` is timed against, and the runs that hold an image
  # for the overlapping rows, if the script stopped early; the memory
  # cgroup of the page cache rows.
  $fwrun stop fwbench-enter 2>/dev/null || true
  for h in fwbench-hold fwbench-hold-ext2 fwbench-hold-sqfs; do $fwrun stop --kill $h 2>/dev/null || true; done
  if [ -n "${memcg:-}" ] && [ -d "$memcg" ]; then rmdir "$memcg" 2>/dev/null || true; fi
  for d in $(nspawn_cgroups | grep -vxF -f "$tmp/nspawn-cgroups.before"); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$tmp"
  # Directories the benchmark's own runs created on the host, if they were
  # not there before: fwrun's state root (left empty by fwrun) and nspawn's.
  if [ "$had_run_fwrun" = 0 ]; then rmdir /run/fwrun 2>/dev/null || true; fi
  if [ "$had_nspawn_state" = 0 ]; then rm -rf /run/systemd/nspawn; fi
}
trap cleanup EXIT
leftovers >"$tmp/leftovers.before"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -s "$tmp/leftovers.before" ]; then
  say "warning: not clean before the benchmark (another user?):"
  sed 's/^/  /' "$tmp/leftovers.before" >&2
fi

# --- Helpers ------------------------------------------------------------------
# Other work that would skew the figures (builds, test runs, VMs), sampled
# after each timing and named in the report.
others() {
  ps -eo args= | awk '$1 ~ /(^|\/)(cargo|rustc|clippy-driver|qemu-system[^\/]*)$/ || $1 ~ /\/target\/debug\// { n = $1; sub(/.*\//, "", n); print n }' \
    | sort -u >>"$tmp/others"
}
# bench NAME RUNS WARMUP COMMAND...: hyperfine COMMAND (run directly, no
# shell in between; its words quoted, so that an argument with spaces stays
# one), its JSON kept as $tmp/NAME.json; the command line as
# shown in the report is kept as $tmp/NAME.cmd.
bench() {
  local name=$1 runs=$2 warm=$3
  shift 3
  printf '%s' "${*//$tmp/\$TMP}" >"$tmp/$name.cmd"
  say "timing $name: $*"
  hyperfine --shell=none --style basic --warmup "$warm" --runs "$runs" \
    --command-name "$name" --export-json "$tmp/$name.json" -- "$(printf '%q ' "$@")" >&2
  others
}
# paired NAME ROUNDS REF=COMMAND OTHER=COMMAND...: the commands one run
# each in turn, ROUNDS rounds (tests/bench/alternate.py --ref REF): the
# medians, and each other command's ratio to REF (and difference) taken
# pair by pair, in $tmp/NAME.pairs. Every ratio in the report comes from
# such pairs.
paired() {
  local name=$1 rounds=$2 ref=${3%%=*}
  shift 2
  say "timing $name, paired with ${ref}, $rounds rounds"
  python3 "$here/alternate.py" --ref "$ref" "$rounds" "$@" >"$tmp/$name.pairs" \
    || die "the paired runs ($name) failed"
  others
}
# pair_field NAME KIND OTHER FIELD: of $tmp/NAME.pairs' "KIND OTHER REF ..."
# line, FIELD (4 median, 5 and 6 the quartiles, 7 and 8 min and max, 9 the
# number of pairs).
pair_field() { awk -v k="$2" -v o="$3" -v f="$4" '$1 == k && $2 == o { print $f }' "$tmp/$1.pairs"; }
# ratio NAME OTHER: the median per-pair ratio OTHER / REF.
ratio() { pair_field "$1" ratio "$2" 4; }
# ratio_text NAME OTHER: "1.52 (quartiles 1.45–1.60, 100 pairs)".
ratio_text() {
  awk -v o="$2" '$1 == "ratio" && $2 == o { printf "%.2f (quartiles %.2f–%.2f, %d pairs)", $4, $5, $6, $9 }' "$tmp/$1.pairs"
}
# diff_text NAME OTHER: the median per-pair difference OTHER − REF, in ms.
diff_text() {
  awk -v o="$2" '$1 == "diff" && $2 == o { printf "%.2f ms (quartiles %.2f–%.2f, %d pairs)", $4, $5, $6, $9 }' "$tmp/$1.pairs"
}
# The median of a hyperfine run, in ms.
median_ms() { jq -r '.results[0].median * 1000' "$tmp/$1.json"; }
runs_of() { jq -r '.results[0].times | length' "$tmp/$1.json"; }
# Arithmetic and comparisons on decimals, through awk.
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
holds() { awk "BEGIN { exit !($1) }"; }
# verdict CONDITION: PASS or MISS.
verdict() { if holds "$1"; then echo PASS; else echo MISS; fi; }

# --- 1, 2: fwrun ---------------------------------------------------------------
# Each is tried once first, so that a failure is reported plainly (hyperfine
# would only say that the command failed).
$fwrun --firmware $img -q -- /bin/true || die "fwrun from $img failed"
$fwrun --firmware $dir -q -- /bin/true || die "fwrun from $dir failed"
$fwrun --firmware $sqfs -q -- /bin/true || die "fwrun from $sqfs failed"
bench fwrun-ext2 $fast_runs $warmup $fwrun --firmware $img -q -- /bin/true
bench fwrun-dir $fast_runs $warmup $fwrun --firmware $dir -q -- /bin/true
bench fwrun-sqfs $mid_runs 10 $fwrun --firmware $sqfs -q -- /bin/true
# A run that overlaps another run of the same image: the image's loop device
# and superblock are already there (and warm), as for the second of two
# runs side by side. One run holds the image (its init sleeps) while each
# timed run starts, shares the lower layer and ends.
hold() { # hold IMAGE [NAME]: a run of IMAGE that stays until unhold [NAME]
  local name=${2:-fwbench-hold}
  $fwrun --firmware "$1" --name "$name" -q -- /bin/sleep 100000 </dev/null >/dev/null 2>&1 &
  $fwrun wait "$name" --timeout 10s || die "the run holding $1 did not start"
}
unhold() { $fwrun stop --kill "${1:-fwbench-hold}" >/dev/null || die "could not stop ${1:-fwbench-hold}"; }
hold $img
bench fwrun-ext2-shared $fast_runs $warmup $fwrun --firmware $img -q -- /bin/true
unhold
hold $sqfs
bench fwrun-sqfs-shared $fast_runs $warmup $fwrun --firmware $sqfs -q -- /bin/true
unhold
# The network's cost: the same run with --net none (the default, said
# explicitly) and with a veth pair to the host, side by side in one
# hyperfine call. No traffic is sent.
$fwrun --firmware $img -q --net veth -- /bin/true || die "fwrun --net veth failed"
hyperfine --shell=none --style basic --warmup "$warmup" --runs "$fast_runs" \
  --command-name fwrun-ext2-none --command-name fwrun-ext2-veth \
  --export-json "$tmp/net.json" \
  -- "$fwrun --firmware $img -q --net none -- /bin/true" \
     "$fwrun --firmware $img -q --net veth -- /bin/true" >&2
others
for i in 0 1; do
  name=$(jq -r ".results[$i].command" "$tmp/net.json")
  jq "{results: [.results[$i]]}" "$tmp/net.json" >"$tmp/$name.json"
  printf '%s' "$fwrun --firmware $img -q --net $([ $i = 0 ] && echo none || echo veth) -- /bin/true" >"$tmp/$name.cmd"
done
paired net $alt_rounds "none=$fwrun --firmware $img -q --net none -- /bin/true" \
  "veth=$fwrun --firmware $img -q --net veth -- /bin/true"
# What starting the binary alone costs (exec, loader, argument parsing, exit),
# and what starting any process costs hyperfine on this machine.
bench fwrun-version $fast_runs $warmup $fwrun --version
bench true $fast_runs $warmup /bin/true

# --- Confinement's cost --------------------------------------------------------
# The seccomp filter and the mount interception at start (the same run with
# --seccomp off, a debugging flag), and on a syscall-heavy workload inside
# the firmware: 100 walks of its whole root (find issues openat, getdents,
# fstat and close by the thousand, none of which the filter hands over).
heavy='for i in $(seq 100); do find / -xdev >/dev/null; done'
$fwrun --firmware $img -q -- /bin/sh -c "$heavy" || die "the syscall-heavy run failed"
bench fwrun-ext2-noseccomp $fast_runs $warmup $fwrun --firmware $img -q --seccomp off -- /bin/true
paired seccomp $alt_rounds "off=$fwrun --firmware $img -q --seccomp off -- /bin/true" \
  "on=$fwrun --firmware $img -q -- /bin/true"
bench heavy $heavy_runs 2 $fwrun --firmware $img -q -- /bin/sh -c "$heavy"
bench heavy-noseccomp $heavy_runs 2 $fwrun --firmware $img -q --seccomp off -- /bin/sh -c "$heavy"
# The same two, alternated run by run, so that a change in the machine's
# load falls on both alike; with the CPU time (user and system, of fwrun
# and everything it waited for), which another process's load moves less
# than the wall clock.
: >"$tmp/heavy-pairs"
for _ in $(seq "$heavy_runs"); do
  for mode in on off; do
    # bash's time: milliseconds, where /usr/bin/time gives hundredths.
    TIMEFORMAT="$mode %3R %3U %3S"
    { time $fwrun --firmware $img -q --seccomp $mode -- /bin/sh -c "$heavy" 2>"$tmp/heavy.err" \
        || die "the syscall-heavy run (--seccomp $mode) failed: $(cat "$tmp/heavy.err")"; } 2>>"$tmp/heavy-pairs"
  done
done
others
# heavy_ratio FIELD: the median of the per-pair ratios on / off of wall (2)
# or CPU (3) time (each pair is an "on" line and the "off" line after it).
heavy_ratio() {
  awk -v f="$1" '{ t = (f == 2 ? $2 : $3 + $4) } $1 == "on" { on = t } $1 == "off" { print on / t }' "$tmp/heavy-pairs" \
    | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# heavy_median MODE FIELD: the median, in ms, of wall (2) or CPU (3) time.
heavy_median() {
  awk -v m="$1" -v f="$2" '$1 == m { print (f == 2 ? $2 : $3 + $4) * 1000 }' "$tmp/heavy-pairs" \
    | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# --- A command in a running firmware ------------------------------------------
# `fwrun enter NAME -- /bin/true` (find the run and verify it, join the
# init's namespaces, root and working directory, confine the command as the
# init is, exec, wait, relay its status) against `nsenter -a -t PID
# /bin/true` (the namespaces, root and working directory only), on one run
# of the test firmware that stays up (tests/firmware/files/service.sh).
enter_name=fwbench-enter
$fwrun --firmware $img -q --name $enter_name --ready-when console:'login:' \
  -- /test/service.sh >/dev/null 2>&1 &
enter_run=$!
$fwrun wait $enter_name --timeout 30s || die "the run to enter never got ready"
enter_init=$($fwrun list --json | jq -r --arg n $enter_name '.[] | select(.name == $n) | .pid')
$fwrun enter $enter_name -- /bin/true || die "fwrun enter failed"
nsenter -a -t "$enter_init" /bin/true || die "nsenter failed"
bench enter $fast_runs $warmup $fwrun enter $enter_name -- /bin/true
bench nsenter $fast_runs $warmup nsenter -a -t "$enter_init" /bin/true
paired enter $alt_rounds "nsenter=nsenter -a -t $enter_init /bin/true" \
  "enter=$fwrun enter $enter_name -- /bin/true"
$fwrun stop $enter_name
wait $enter_run || true

# --- 3: bubblewrap -----------------------------------------------------------------
bwrap --ro-bind $dir / --proc /proc --dev /dev --unshare-all --die-with-parent /bin/true \
  || die "bwrap failed"
bench bwrap $fast_runs $warmup \
  bwrap --ro-bind $dir / --proc /proc --dev /dev --unshare-all --die-with-parent /bin/true

# --- Side by side, alternated --------------------------------------------------------
# The image against the directory and bubblewrap, a first run of an image
# (a copy nobody else runs) and a run of an image another run holds: one
# run of each in turn, $alt_rounds rounds (tests/bench/alternate.py), so that
# the drift of a busy machine falls on all alike. The targets of sharing are
# read from these medians.
cp $img "$tmp/copy.ext2"
cp $sqfs "$tmp/copy.sqfs"
hold $img fwbench-hold-ext2
hold $sqfs fwbench-hold-sqfs
say "timing first and shared runs, the directory and bubblewrap, alternated, $alt_rounds rounds"
python3 "$here/alternate.py" --ref bwrap "$alt_rounds" \
  "ext2-first=$fwrun --firmware $tmp/copy.ext2 -q -- /bin/true" \
  "ext2-shared=$fwrun --firmware $img -q -- /bin/true" \
  "sqfs-first=$fwrun --firmware $tmp/copy.sqfs -q -- /bin/true" \
  "sqfs-shared=$fwrun --firmware $sqfs -q -- /bin/true" \
  "dir=$fwrun --firmware $dir -q -- /bin/true" \
  "bwrap=bwrap --ro-bind $dir / --proc /proc --dev /dev --unshare-all --die-with-parent /bin/true" \
  >"$tmp/alt.pairs" || die "the alternated runs failed"
# The ratio of each to bubblewrap is taken from runs paired one by one: one
# of each next to the other (A B, then B A), so that every pair's two runs
# follow each other and meet the same machine.
bw_cmd="bwrap --ro-bind $dir / --proc /proc --dev /dev --unshare-all --die-with-parent /bin/true"
paired bw-ext2-first $alt_rounds "bwrap=$bw_cmd" "fwrun=$fwrun --firmware $tmp/copy.ext2 -q -- /bin/true"
paired bw-ext2-shared $alt_rounds "bwrap=$bw_cmd" "fwrun=$fwrun --firmware $img -q -- /bin/true"
paired bw-sqfs-first $alt_rounds "bwrap=$bw_cmd" "fwrun=$fwrun --firmware $tmp/copy.sqfs -q -- /bin/true"
paired bw-sqfs-shared $alt_rounds "bwrap=$bw_cmd" "fwrun=$fwrun --firmware $sqfs -q -- /bin/true"
paired bw-dir $alt_rounds "bwrap=$bw_cmd" "fwrun=$fwrun --firmware $dir -q -- /bin/true"
unhold fwbench-hold-ext2
unhold fwbench-hold-sqfs
others

# --- An earlier build, when given --------------------------------------------------
baseline=${FWRUN_BENCH_BASELINE:-}
if [ -n "$baseline" ]; then
  [ -x "$baseline" ] || die "FWRUN_BENCH_BASELINE=$baseline is not an executable"
  as_installed "$baseline"
  baseline_rounds=$((alt_rounds * 2))
  say "timing this build against $baseline, alternated, $baseline_rounds rounds"
  python3 "$here/alternate.py" --ref baseline "$baseline_rounds" \
    "now=$fwrun --firmware $img -q -- /bin/true" \
    "baseline=$baseline --firmware $img -q -- /bin/true" \
    >"$tmp/baseline.pairs" || die "the runs against the baseline failed"
  b_now=$(alt_in "$tmp/baseline.pairs" now)
  b_base=$(alt_in "$tmp/baseline.pairs" baseline)
  b_diff=$(pair_field baseline diff now 4)
fi

# --- 4: systemd-nspawn --------------------------------------------------------------
# nspawn writes into a directory it boots (/etc/localtime, /etc/resolv.conf,
# /var/log/journal), so it gets a copy of the firmware, removed at the end.
# hyperfine gives it no stdin; if it refuses to run so, --pipe is tried.
nspawn_dir=$tmp/nspawn-root
cp -a $dir "$nspawn_dir"
nspawn_note=
nspawn_cmd=
for extra in "" "--pipe"; do
  cmd="systemd-nspawn -q -D $nspawn_dir --register=no --keep-unit $extra /bin/true"
  rc=0
  $cmd </dev/null >"$tmp/nspawn.out" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    nspawn_cmd=$cmd
    break
  fi
  nspawn_note="exit $rc: $(head -c 300 "$tmp/nspawn.out" | tr '\n' ' ')"
done
[ -n "$nspawn_cmd" ] || die "systemd-nspawn cannot run here ($nspawn_note): the comparison needs it"
# Anything nspawn says on a good run is kept for the report.
nspawn_warn=$(head -n 3 "$tmp/nspawn.out" | tr '\n' ' ' | sed 's/ *$//')
# shellcheck disable=SC2086 # $nspawn_cmd is split into words on purpose
bench nspawn $slow_runs 3 $nspawn_cmd
paired nspawn $slow_runs "fwrun=$fwrun --firmware $img -q -- /bin/true" "nspawn=$nspawn_cmd"

# --- Boot time of a real firmware ------------------------------------------------------
# Debian minbase with systemd, to multi-user.target: fwrun against
# systemd-nspawn -b on the same tree (tests/bench/boot.sh, which can also
# run on its own).
bash "$here/boot.sh" "$fwrun" >"$tmp/boot.md" || die "tests/bench/boot.sh failed"
others
# The relay of --publish against --net veth (tests/bench/publish.sh, which
# can also run on its own).
bash "$here/publish.sh" "$fwrun" >"$tmp/publish.md" || die "tests/bench/publish.sh failed"
others

# --- 5: the shell floor ----------------------------------------------------------------
sh "$here/floor.sh" $img || die "tests/bench/floor.sh failed"
bench floor $mid_runs 10 sh tests/bench/floor.sh $img
paired floor $mid_runs "fwrun=$fwrun --firmware $img -q -- /bin/true" "floor=sh tests/bench/floor.sh $img"

# --- Peak RSS ---------------------------------------------------------------------
# GNU time's %M: the maximum resident set of fwrun (the largest of fwrun and
# the child it waited for), in KiB, one fresh measurement per run.
for _ in $(seq "$rss_runs"); do
  /usr/bin/time -f %M -o "$tmp/rss.one" $fwrun --firmware $img -q -- /bin/true
  cat "$tmp/rss.one" >>"$tmp/rss"
done
rss_max=$(sort -n "$tmp/rss" | tail -n1)
rss_med=$(sort -n "$tmp/rss" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

# --- 16 in parallel --------------------------------------------------------------------
# A small script starts N fwrun in the background and waits for them all
# (failing if one fails); hyperfine times it with N=1 and N=16.
cat >"$tmp/parallel.sh" <<'EOF'
#!/bin/sh
# parallel.sh N COMMAND...: run N copies of COMMAND at once, wait for all.
n=$1; shift
pids=
i=0
while [ "$i" -lt "$n" ]; do
  "$@" &
  pids="$pids $!"
  i=$((i + 1))
done
status=0
for p in $pids; do wait "$p" || status=1; done
exit "$status"
EOF
sh "$tmp/parallel.sh" 16 $fwrun --firmware $img -q -- /bin/true || die "16 fwrun in parallel failed"
bench parallel-1 $slow_runs 5 sh "$tmp/parallel.sh" 1 $fwrun --firmware $img -q -- /bin/true
bench parallel-16 $slow_runs 5 sh "$tmp/parallel.sh" 16 $fwrun --firmware $img -q -- /bin/true
bench parallel-16-sqfs $slow_runs 5 sh "$tmp/parallel.sh" 16 $fwrun --firmware $sqfs -q -- /bin/true
# For scale (not a target): the same harness with bwrap, and with /bin/true,
# which shows how far 16 processes on this machine's CPUs can go at best.
bwrap_cmd="bwrap --ro-bind $dir / --proc /proc --dev /dev --unshare-all --die-with-parent /bin/true"
# shellcheck disable=SC2086 # $bwrap_cmd is split into words on purpose
bench parallel-1-bwrap $slow_runs 5 sh "$tmp/parallel.sh" 1 $bwrap_cmd
# shellcheck disable=SC2086
bench parallel-16-bwrap $slow_runs 5 sh "$tmp/parallel.sh" 16 $bwrap_cmd
bench parallel-1-true $slow_runs 5 sh "$tmp/parallel.sh" 1 /bin/true
bench parallel-16-true $slow_runs 5 sh "$tmp/parallel.sh" 16 /bin/true
paired par-fwrun $slow_runs "one=sh $tmp/parallel.sh 1 $fwrun --firmware $img -q -- /bin/true" \
  "sixteen=sh $tmp/parallel.sh 16 $fwrun --firmware $img -q -- /bin/true"
paired par-bwrap $slow_runs "one=sh $tmp/parallel.sh 1 $bwrap_cmd" "sixteen=sh $tmp/parallel.sh 16 $bwrap_cmd"
paired par-true $slow_runs "one=sh $tmp/parallel.sh 1 /bin/true" "sixteen=sh $tmp/parallel.sh 16 /bin/true"
# The throughput target compares fwrun and bubblewrap in the same harness:
# one round of 16 of each in turn, so that the machine's drift between the
# series above (bubblewrap alone did 311 to 399 runs/s in them) falls on
# both alike.
say "timing 16 runs of the image against 16 of bubblewrap, alternated, $alt_rounds rounds"
# shellcheck disable=SC2086
python3 "$here/alternate.py" --ref ext2 "$alt_rounds" \
  "ext2=sh $tmp/parallel.sh 16 $fwrun --firmware $img -q -- /bin/true" \
  "bwrap=sh $tmp/parallel.sh 16 $bwrap_cmd" \
  >"$tmp/alt-par.pairs" || die "the alternated parallel runs failed"

# --- Memory and page cache of 16 runs of one image ------------------------------------
# N runs of one image (N = 1, then 16) start at once, each reading the
# firmware's busybox whole (its page cache) before it says it is up through a
# bound directory; once all are up, what they have added is read, then they
# are let go. They run in a memory cgroup of the benchmark's own, so that
# what the machine's other users do is not counted: its peak (v2
# memory.peak, v1 memory.max_usage_in_bytes) and the page cache charged to
# it (memory.stat's file, v1 cache). A memory controller is required.
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  memcg_root=/sys/fs/cgroup memcg_peak=memory.peak memcg_cache=file
elif [ -d /sys/fs/cgroup/memory ]; then
  memcg_root=/sys/fs/cgroup/memory memcg_peak=memory.max_usage_in_bytes memcg_cache=cache
else
  die "no memory cgroup controller: the page cache of 16 runs cannot be measured"
fi
gate=$tmp/gate
memory_of() { # memory_of IMAGE N: "PEAK_KIB CACHE_KIB" of N gated runs, in $tmp/mem.out
  local fw=$1 n=$2 i
  memcg=$memcg_root/fwbench-mem-$$
  mkdir "$memcg"
  rm -rf "$gate"; mkdir "$gate"
  (
    echo 0 >"$memcg/cgroup.procs"
    for i in $(seq "$n"); do
      $fwrun --firmware "$fw" --name "fwbench-mem-$i" -q --bind "$gate:/gate" -- /bin/sh -c \
        'cat /bin/busybox >/dev/null; touch /gate/up-$FWRUN_NAME; while [ ! -e /gate/go ]; do sleep 0.02; done' \
        </dev/null >/dev/null 2>&1 &
    done
    for i in $(seq 1000); do
      [ "$(find "$gate" -name 'up-*' | wc -l)" -ge "$n" ] && break
      sleep 0.02
    done
    [ "$(find "$gate" -name 'up-*' | wc -l)" -ge "$n" ] || { touch "$gate/go"; exit 1; }
    awk -v k="$memcg_cache" '$1 == k { printf "%d", $2 / 1024 }' "$memcg/memory.stat" >"$tmp/mem.cache"
    touch "$gate/go"
    wait
  ) || die "$n gated runs of $fw did not all come up"
  echo "$(($(cat "$memcg/$memcg_peak") / 1024)) $(cat "$tmp/mem.cache")" >"$tmp/mem.out"
  rmdir "$memcg"
  memcg=
}
say "memory and page cache of 1 and 16 runs of $sqfs and $img"
memory_of $sqfs 1; read -r mem1_sqfs cache1_sqfs <"$tmp/mem.out"
memory_of $sqfs 16; read -r mem16_sqfs cache16_sqfs <"$tmp/mem.out"
memory_of $img 1; read -r mem1_ext2 cache1_ext2 <"$tmp/mem.out"
memory_of $img 16; read -r mem16_ext2 cache16_ext2 <"$tmp/mem.out"

# --- Phases -----------------------------------------------------------------------------
# `fwrun -v` ends each phase with "fwrun: WHAT (N.N ms)". The lines name the
# run, its loop device and pid, so each is mapped to a fixed phase name;
# the median of each phase over the runs is reported.
phases() { # phases FIRMWARE OUTFILE: "PHASE MS" lines, and "total MS" per run
  local fw=$1 out=$2
  for _ in $(seq "$phase_runs"); do
    $fwrun --firmware "$fw" -v -- /bin/true 2>"$tmp/v.txt"
    awk '
      /^fwrun: .* \([0-9.]+ ms\)$/ {
        ms = $(NF - 1); sub(/^\(/, "", ms)   # "(1.2" of "... (1.2 ms)"
        p = "?"
        if ($0 ~ /checked firmware/)               p = "1-validate"
        else if ($0 ~ /private mount namespace/)   p = "2-state+mountns"
        else if ($0 ~ /mounted the image|bound the directory/) p = "3-lower"
        else if ($0 ~ /mounted the overlay/)       p = "4-overlay"
        else if ($0 ~ /cgroup hierarchies/)        p = "4c-cgroups"
        else if ($0 ~ /started .* as pid 1/)       p = "5-clone+setup+exec"
        else if ($0 ~ /init ended/)                p = "6-init-ran"
        else if ($0 ~ /tore down/)                 p = "7-teardown"
        print p, ms
        total += ms
      }
      END { print "8-total", total }' "$tmp/v.txt" >>"$out"
  done
}
median_by_phase() { # "PHASE MS" lines -> "PHASE MEDIAN" lines, in phase order
  sort -k1,1 -k2,2n "$1" | awk '
    { if ($1 != cur) { flush(); cur = $1; n = 0 } v[++n] = $2 }
    function flush() { if (n) printf "%s %.2f\n", cur, v[int((n + 1) / 2)] }
    END { flush() }'
}
say "fwrun -v phases, $phase_runs runs each from $img, $sqfs and $dir, and from $img shared"
phases $img "$tmp/phases-ext2"
phases $sqfs "$tmp/phases-sqfs"
phases $dir "$tmp/phases-dir"
hold $img
phases $img "$tmp/phases-shared"
unhold
for p in ext2 sqfs dir shared; do
  median_by_phase "$tmp/phases-$p" >"$tmp/phases-$p.med"
done

# --- Figures, ratios, targets ---------------------------------------------------------
ext2=$(median_ms fwrun-ext2)
fdir=$(median_ms fwrun-dir)
fver=$(median_ms fwrun-version)
bw=$(median_ms bwrap)
fl=$(median_ms floor)
p1=$(median_ms parallel-1)
p16=$(median_ms parallel-16)
# Every ratio and difference is the median of per-pair figures (paired
# above); the hyperfine medians' ratios are kept as footnotes (h_*).
h_bwrap=$(calc "$ext2 / $bw" 2)
h_floor=$(calc "$fl / $ext2" 2)
h_par=$(calc "$p16 / $p1" 2)
r_bwrap=$(ratio bw-ext2-first fwrun)
r_floor=$(ratio floor floor)
veth_cost=$(pair_field net diff veth 4)
r_par=$(ratio par-fwrun sixteen)
r_enter=$(ratio enter enter)
rss_mib=$(calc "$rss_max / 1024" 2)
ns=$(median_ms nspawn)
h_nspawn=$(calc "$ns / $ext2" 2)
r_nspawn=$(ratio nspawn nspawn)
sq=$(median_ms fwrun-sqfs)
sq_shared=$(median_ms fwrun-sqfs-shared)
ext2_shared=$(median_ms fwrun-ext2-shared)
alt() { alt_in "$tmp/alt.pairs" "$1"; }
a_ext2=$(alt ext2-first) a_ext2s=$(alt ext2-shared) a_sq=$(alt sqfs-first)
a_sqs=$(alt sqfs-shared) a_dir=$(alt dir) a_bw=$(alt bwrap)
# Throughput of 16 runs of one image side by side: runs per second.
tput() { calc "16 / ($(median_ms "$1") / 1000)" 1; }
tput_ext2=$(tput parallel-16)
tput_sqfs=$(tput parallel-16-sqfs)
tput_bwrap=$(tput parallel-16-bwrap)
a_par_ext2=$(alt_in "$tmp/alt-par.pairs" ext2) a_par_bwrap=$(alt_in "$tmp/alt-par.pairs" bwrap)
a_tput_ext2=$(calc "16 / ($a_par_ext2 / 1000)" 1) a_tput_bwrap=$(calc "16 / ($a_par_bwrap / 1000)" 1)
# fwrun's throughput / bwrap's, pair by pair: bwrap's wall time / fwrun's.
r_tput=$(ratio alt-par bwrap)

row() { # row NAME LABEL: a table row for one hyperfine run
  # shellcheck disable=SC2016 # the backquotes are Markdown
  printf '| %s | `%s` | %s | %s |\n' "$2" "$(cat "$tmp/$1.cmd")" "$(calc "$(median_ms "$1")" 2)" "$(runs_of "$1")"
}
phase_ms() { awk -v p="$1" '$1 == p { print $2; f = 1 } END { if (!f) print "-" }' "$2"; }

# --- Leftover check ---------------------------------------------------------------
leftovers >"$tmp/leftovers.after"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
new_leftovers=$(grep -vxF -f "$tmp/leftovers.before" "$tmp/leftovers.after" || true)
if [ -n "$new_leftovers" ]; then
  leftover_text="LEFT BEHIND: $(printf '%s' "$new_leftovers" | tr '\n' ';')"
elif [ -s "$tmp/leftovers.before" ]; then
  # Only the entries that were not there before count.
  leftover_text="none new (some loop devices, state, processes or profiles existed before the run)"
else
  leftover_text="none: no loop device attached, /run/fwrun empty, no fwrun, bwrap or nspawn process, no pid namespace, no fwrun profile, no fw-* interface"
fi

# --- Report ----------------------------------------------------------------------
report=$tmp/RESULTS.md
{
  echo "# fwrun benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- kernel: $(uname -srm); $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo))"
  echo "- fwrun: $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?') ($($fwrun --version 2>/dev/null | head -n1))${build_note:+; $build_note}"
  echo "- tools: $(hyperfine --version), bubblewrap $(bwrap --version | awk '{ print $2 }'), $(systemd-nspawn --version | head -n1 | awk '{ print "systemd", $2 }'), $(unshare --version | awk '{ print $NF }' | sed 's/^/util-linux /')"
  echo "- firmware: busybox test firmware (tests/firmware/build.sh): $img ($(du -k $img | cut -f1) KiB), $dir"
  echo "- reproduce: \`sudo tests/bench/bench.sh\`"
  echo
  echo "## End to end, \`-- /bin/true\` (hyperfine medians)"
  echo
  echo "| what | command | median (ms) | runs |"
  echo "| --- | --- | ---: | ---: |"
  row fwrun-ext2 "fwrun, ext2 image"
  row fwrun-dir "fwrun, directory"
  row fwrun-sqfs "fwrun, squashfs image"
  row fwrun-ext2-shared "fwrun, ext2 image, while another run of it runs (shares its lower layer)"
  row fwrun-sqfs-shared "fwrun, squashfs image, while another run of it runs (shares its lower layer)"
  row fwrun-ext2-none "fwrun, ext2 image, --net none"
  row fwrun-ext2-veth "fwrun, ext2 image, --net veth"
  row bwrap "bubblewrap"
  row nspawn "systemd-nspawn"
  row floor "shell floor (unshare, mount -o loop, overlay, proc, chroot)"
  row fwrun-ext2-noseccomp "fwrun, ext2 image, --seccomp off (debugging only)"
  row fwrun-version "fwrun --version (process start and exit only)"
  row true "/bin/true on the host (hyperfine's cost of starting a process)"
  echo
  echo "## Ratios and other figures"
  echo
  echo "Each ratio is taken pair by pair: one run of each command in turn (the order reversed every other round), the ratio of the two runs of each round, and the median of those ratios with their quartiles (\`tests/bench/alternate.py --ref\`). The ratio of the two hyperfine medians above, one series after the other, is the footnote in brackets; why the two differ is under Method below."
  echo
  echo "| figure | value |"
  echo "| --- | ---: |"
  echo "| fwrun ext2 / bwrap | $(ratio_text bw-ext2-first fwrun) [hyperfine: $h_bwrap] |"
  echo "| nspawn / fwrun ext2 | $(ratio_text nspawn nspawn) [hyperfine: $h_nspawn] |"
  echo "| floor / fwrun ext2 | $(ratio_text floor floor) [hyperfine: $h_floor] |"
  echo "| fwrun enter / nsenter -a | $(ratio_text enter enter) [hyperfine: $(calc "$(median_ms enter) / $(median_ms nsenter)" 2)] |"
  echo "| fwrun peak RSS, max of $rss_runs runs (median) | $rss_max KiB = $rss_mib MiB ($rss_med KiB) |"
  echo "| 1 fwrun, wall (median of $(runs_of parallel-1)) | $(calc "$p1" 2) ms |"
  echo "| 16 fwrun in parallel, wall (median of $(runs_of parallel-16)) | $(calc "$p16" 2) ms |"
  echo "| 16 parallel / 1 | $(ratio_text par-fwrun sixteen) [hyperfine: $h_par] |"
  echo "| for scale: bwrap, 16 parallel / 1 (same harness) | $(ratio_text par-bwrap sixteen) [hyperfine: $(calc "$(median_ms parallel-16-bwrap) / $(median_ms parallel-1-bwrap)" 2)] |"
  echo "| for scale: /bin/true, 16 parallel / 1 (same harness) | $(ratio_text par-true sixteen) [hyperfine: $(calc "$(median_ms parallel-16-true) / $(median_ms parallel-1-true)" 2)] |"
  echo
  echo "## Side by side, alternated"
  echo
  echo "The medians: one run of each in turn, the order reversed every round, $alt_rounds rounds (\`tests/bench/alternate.py\`): on a busy machine the drift falls on all alike, which successive hyperfine series do not give. The ratio to bubblewrap: each against bubblewrap alone, paired one by one ($alt_rounds pairs, \`alternate.py --ref\`), the median of the per-pair ratios and their quartiles. A first run is of a copy of the image no other run uses; a shared run is of an image another run (its init asleep) holds meanwhile."
  echo
  echo "| what | median (ms) | / bwrap, per pair: median (quartiles) |"
  echo "| --- | ---: | ---: |"
  for a in "ext2-first:fwrun, ext2 image, first run" "ext2-shared:fwrun, ext2 image, shared" \
      "sqfs-first:fwrun, squashfs image, first run" "sqfs-shared:fwrun, squashfs image, shared" "dir:fwrun, directory"; do
    echo "| ${a#*:} | $(calc "$(alt "${a%%:*}")" 2) | $(pair_field "bw-${a%%:*}" ratio fwrun 4 | xargs printf '%.2f') ($(pair_field "bw-${a%%:*}" ratio fwrun 5 | xargs printf '%.2f')–$(pair_field "bw-${a%%:*}" ratio fwrun 6 | xargs printf '%.2f')) |"
  done
  echo "| bubblewrap, the directory | $(calc "$a_bw" 2) | 1.00 |"
  echo
  echo "## 16 runs of one image side by side"
  echo
  echo "Throughput: 16 runs started at once by one script, which waits for all (\`sh parallel.sh 16 COMMAND\`); median wall time of $(runs_of parallel-16) rounds (hyperfine, one series after another), in runs per second; for the ext2 image and bubblewrap also one round of each in turn, $alt_rounds rounds (alternated), from which the target is read."
  echo
  echo "| what | 16 runs, wall (ms) | runs per second | alternated: wall (ms) | alternated: runs per second |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| fwrun, ext2 image | $(calc "$p16" 1) | $tput_ext2 | $(calc "$a_par_ext2" 1) | $a_tput_ext2 |"
  echo "| fwrun, squashfs image | $(calc "$(median_ms parallel-16-sqfs)" 1) | $tput_sqfs | - | - |"
  echo "| bubblewrap, the directory | $(calc "$(median_ms parallel-16-bwrap)" 1) | $tput_bwrap | $(calc "$a_par_bwrap" 1) | $a_tput_bwrap |"
  echo
  echo "Memory: N runs of one image at once, each reading the firmware's busybox whole, all up together, in a memory cgroup of the benchmark's ($memcg_root): its peak ($memcg_peak: the runs' processes and the page cache charged to them) and its page cache while they all run (memory.stat $memcg_cache), KiB."
  echo
  echo "| what | 1 run: peak | 1 run: page cache | 16 runs: peak | 16 runs: page cache | page cache, 16 / 1 |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  echo "| squashfs image | $mem1_sqfs | $cache1_sqfs | $mem16_sqfs | $cache16_sqfs | $(calc "$cache16_sqfs / $cache1_sqfs" 2) |"
  echo "| ext2 image | $mem1_ext2 | $cache1_ext2 | $mem16_ext2 | $cache16_ext2 | $(calc "$cache16_ext2 / $cache1_ext2" 2) |"
  echo
  echo "## Confinement's cost"
  echo
  echo "| what | command | median (ms) | runs |"
  echo "| --- | --- | ---: | ---: |"
  row heavy "100 walks of the root inside the firmware"
  row heavy-noseccomp "the same, --seccomp off"
  echo
  echo "- The filter and the interception at start, per pair (--seccomp off, then on): $(diff_text seccomp on) [hyperfine medians: $(calc "$ext2 - $(median_ms fwrun-ext2-noseccomp)" 2) ms]."
  echo "- $(verdict "$(heavy_ratio 2) <= 1.05"): a syscall-heavy workload within 5 % of --seccomp off, run by run in pairs ($heavy_runs pairs): per-pair ratio of wall time $(heavy_ratio 2) (medians $(calc "$(heavy_median on 2)" 1) / $(calc "$(heavy_median off 2)" 1) ms), of CPU time $(heavy_ratio 3) [hyperfine, one series after the other: ratio $(calc "$(median_ms heavy) / $(median_ms heavy-noseccomp)" 3)]"
  echo
  echo "## A command in a running firmware"
  echo
  echo "| what | command | median (ms) | runs |"
  echo "| --- | --- | ---: | ---: |"
  row enter "fwrun enter (namespaces, root, AppArmor/capabilities/seccomp, exec, wait)"
  row nsenter "nsenter -a (namespaces and root only)"
  echo
  cat "$tmp/boot.md"
  echo
  cat "$tmp/publish.md"
  if [ -n "$baseline" ]; then
    echo
    echo "## Against an earlier build"
    echo
    echo "\`$fwrun --firmware $img -q -- /bin/true\` and the same with $baseline ($("$baseline" --version 2>/dev/null | head -n1 || echo "its version unknown")), one run of each in turn, $baseline_rounds rounds, medians; RUST_BACKTRACE is $(if [ -n "${RUST_BACKTRACE:-}" ]; then echo "set to $RUST_BACKTRACE"; else echo unset; fi) here."
    echo
    echo "| what | median (ms) |"
    echo "| --- | ---: |"
    echo "| this build | $(calc "$b_now" 2) |"
    echo "| the earlier build | $(calc "$b_base" 2) |"
    echo
    echo "- $(verdict "$b_diff <= 0.5"): this build's end-to-end time rises by at most 0.5 ms over the earlier build's, per pair: $(diff_text baseline now)"
  fi
  echo
  echo "## Targets"
  echo
  echo "Every ratio is the median of per-pair ratios (above); the ratio of the hyperfine medians, one series after the other, is in brackets:"
  echo
  echo "- $(verdict "$r_bwrap <= 1.3"): fwrun ext2 ≤ 1.3 × bwrap on the same tree as a directory: $(ratio_text bw-ext2-first fwrun); a run that overlaps another of the image: $(ratio_text bw-ext2-shared fwrun) [hyperfine: $h_bwrap; overlapping $(calc "$ext2_shared / $bw" 2)]"
  echo "- $(verdict "$(ratio bw-dir fwrun) <= 1.0"): fwrun directory ≤ 1.0 × bwrap: $(ratio_text bw-dir fwrun) [hyperfine: $(calc "$fdir / $bw" 2)]"
  echo "- $(verdict "$(ratio bw-sqfs-shared fwrun) <= 2"): fwrun squashfs, the second of two overlapping runs, ≤ 2 × bwrap: $(ratio_text bw-sqfs-shared fwrun); a first run (nothing shared): $(ratio_text bw-sqfs-first fwrun) [hyperfine: $(calc "$sq_shared / $bw" 2) and $(calc "$sq / $bw" 2)]"
  echo "- $(verdict "$r_tput >= 0.9"): 16 runs of one ext2 image side by side: throughput ≥ 0.9 × bwrap's in the same harness, per pair of rounds: $(ratio_text alt-par bwrap) ($a_tput_ext2 vs $a_tput_bwrap runs/s at the medians) [hyperfine series: $(calc "$tput_ext2 / $tput_bwrap" 2)]"
  echo "- $(verdict "$cache16_sqfs <= 2 * $cache1_sqfs"): 16 runs of one squashfs image add ≤ 2 × the page cache of one run ($cache16_sqfs KiB vs 2 × $cache1_sqfs KiB; ratio $(calc "$cache16_sqfs / $cache1_sqfs" 2))"
  echo
  echo "Earlier targets:"
  echo
  echo "- $(verdict "$r_bwrap <= 2.5"): fwrun ext2 ≤ 2.5 × bwrap: $(ratio_text bw-ext2-first fwrun) [hyperfine: $h_bwrap]"
  echo "- $(verdict "$ext2 <= 12"): fwrun ext2 ≤ 12 ms ($(calc "$ext2" 2) ms, hyperfine median)"
  echo "- $(verdict "$r_nspawn >= 4"): fwrun ≥ 4× faster than systemd-nspawn: nspawn / fwrun $(ratio_text nspawn nspawn) [hyperfine: $h_nspawn]"
  echo "- $(verdict "$r_floor >= 2"): fwrun ≥ 2× faster than the shell floor: floor / fwrun $(ratio_text floor floor) [hyperfine: $h_floor]"
  echo "- $(verdict "$veth_cost <= 3"): --net veth adds ≤ 3 ms to --net none: $(diff_text net veth) [hyperfine medians: $(calc "$(median_ms fwrun-ext2-veth)" 2) vs $(calc "$(median_ms fwrun-ext2-none)" 2) ms]"
  echo "- $(verdict "$rss_max <= 8192"): peak RSS ≤ 8 MiB ($rss_mib MiB)"
  echo "- $(verdict "$r_enter <= 2"): fwrun enter ≤ 2 × nsenter -a: $(ratio_text enter enter) [hyperfine: $(calc "$(median_ms enter) / $(median_ms nsenter)" 2)]"
  echo "- $(verdict "$r_par <= 4"): 16 in parallel ≤ 4 × one: $(ratio_text par-fwrun sixteen) [hyperfine: $h_par]"
  echo
  echo "## Where fwrun's time goes (\`fwrun -v\`, median of $phase_runs runs, ms)"
  echo
  echo "| phase | ext2 image | squashfs image | ext2, shared with a running run | directory |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for p in 1-validate 2-state+mountns 3-lower 4-overlay 4c-cgroups 5-clone+setup+exec 6-init-ran 7-teardown 8-total; do
    case $p in
      1-validate) label="parse done → checked the firmware (preflight, detect the kind)" ;;
      2-state+mountns) label="signals, sweep, state dir, private mount namespace, workspace tmpfs" ;;
      3-lower) label="lower layer: the image's entry, loop device + mount (or the shared device's superblock), or read-only bind" ;;
      4-overlay) label="overlay (upper in the tmpfs)" ;;
      4c-cgroups) label="the init read in the firmware, its defaults, and (a v1 or hybrid host) the run's cgroup in each hierarchy" ;;
      5-clone+setup+exec) label="clone3 into the namespaces and the user namespace's map, v1 cgroups joined, /proc /sys /dev, hostname, lo, pivot_root (beside), the locked copy, exec" ;;
      6-init-ran) label="/bin/true ran and was reaped" ;;
      7-teardown) label="teardown (unmounts, state dir)" ;;
      8-total) label="**sum of the phases**" ;;
    esac
    echo "| $label | $(phase_ms $p "$tmp/phases-ext2.med") | $(phase_ms $p "$tmp/phases-sqfs.med") | $(phase_ms $p "$tmp/phases-shared.med") | $(phase_ms $p "$tmp/phases-dir.med") |"
  done
  echo "| end to end (hyperfine median, above) | $(calc "$ext2" 2) | $(calc "$sq" 2) | $(calc "$ext2_shared" 2) | $(calc "$fdir" 2) |"
  outside() { calc "$1 - $(phase_ms 8-total "$tmp/phases-$2.med")" 2; }
  echo "| outside the phases (end to end − sum): exec, loader, parsing, process exit | $(outside "$ext2" ext2) | $(outside "$sq" sqfs) | $(outside "$ext2_shared" shared) | $(outside "$fdir" dir) |"
  echo
  echo "\`fwrun --version\` alone takes $(calc "$fver" 2) ms."
  echo
  echo "## Method"
  echo
  echo "Every ratio above is taken pair by pair: the two commands run one after the other, the order reversed every other round, the ratio of each pair's two times is kept, and the figure is the median of those ratios, with their quartiles (the spread) and the number of pairs. Differences (a flag's cost) are taken the same way. The ratio of two hyperfine medians, one series after the other, is kept only as a footnote in brackets. Where the two disagree, it is the method, not fwrun:"
  echo
  echo "- Two hyperfine series run one after the other, seconds to minutes apart on a shared machine: the ratio of their medians carries whatever the machine's speed did in between (another user's build, the host's own load). A pair's two runs are milliseconds apart, so the drift falls on both alike and cancels in their ratio. This run: nspawn / fwrun $(calc "$r_nspawn" 2) per pair against $h_nspawn from the series; 16 parallel / 1 $(calc "$r_par" 2) against $h_par."
  echo "- A run leaves work the kernel finishes after it has ended (a network namespace is torn down in a workqueue; mounts and loop devices are released after RCU grace periods). In a series of one command, each run meets its own predecessor's; in pairs, each meets the other command's, so the two are compared under the same conditions."
  echo "- A round of several commands (the medians of the side-by-side table) puts other runs between the two compared and changes, round to round, which run comes just before each; a pair keeps the two compared next to each other. The ratio of two medians and the median of the ratios are different statistics, and only the second comes with a spread saying how far one comparison can be trusted; over the same alternated runs of two commands they agree within a few per cent."
  echo
  echo "## Notes"
  echo
  echo "- Load average (1, 5, 15 min) before: $load_before; after: $load_after (the parallel runs raise it)."
  if [ -s "$tmp/others" ]; then
    echo "- **Other work ran during the benchmark** (its figures are disturbed): $(sort -u "$tmp/others" | tr '\n' ' ' | sed 's/ *$//')."
  else
    echo "- No build, test run or VM was seen running during the benchmark."
  fi
  echo "- Each command runs with no stdin and its output discarded (hyperfine \`--shell=none\`)."
  echo "- fwrun$([ -n "$baseline" ] && echo " and the earlier build are" || echo " is") timed as installed: the pages the linker left of the binary in the page cache were written out, dropped and read back first (a freshly linked binary starts about 0.2 ms slower here)."
  echo "- systemd-nspawn runs on a copy of $dir (it writes /etc/localtime, /etc/resolv.conf and /var/log/journal into the tree it boots)."
  if [ -n "${nspawn_warn// /}" ]; then
    echo "- systemd-nspawn said, on a successful run: \`$nspawn_warn\`"
  fi
  echo "- The floor (tests/bench/floor.sh) does less than fwrun: no /sys, /dev, hostname, lo, pivot_root or state directory."
  echo "- Leftovers after the run: $leftover_text."
} >"$report"

cat "$report"
cp "$report" "$here/RESULTS.md"
say "wrote tests/bench/RESULTS.md"

if [ -n "$new_leftovers" ]; then
  say "LEFT BEHIND:"
  printf '%s\n' "$new_leftovers" | sed 's/^/  /' >&2
  exit 1
fi
