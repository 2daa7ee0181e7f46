#!/usr/bin/env bash
# The relay of --publish against the veth it saves a user from: one run of
# the busybox test firmware with --net veth:169.254.84.2/30 and --publish,
# its httpd serving a 64 MiB file and its nc echoing, measured from the
# host both ways in turn (A B A B):
#
# - a 64 MiB transfer (curl): the time and throughput of each, the ratio
#   relay/veth pair by pair;
# - the latency of a new connection (curl's time to the first byte of the
#   small page: connect, the relay's connect inside, httpd's answer);
# - the round trip of one byte on an open connection (nc -e cat inside),
#   2000 of them, each path.
#
#   sudo tests/bench/publish.sh [FWRUN]
#
# Prints a Markdown section on stdout (bench.sh puts it in RESULTS.md).
# Traffic goes to 127.0.0.1 and to the firmware's link-local address on
# the veth fwrun makes (the route to it checked first); nothing is left.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
fwrun=${1:-target/${CARGO_BUILD_TARGET:-x86_64-unknown-linux-musl}/release/fwrun}
rounds=${FWRUN_BENCH_PUBLISH_ROUNDS:-10}
say() { printf 'publish.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for t in curl python3 ip; do command -v $t >/dev/null || die "$t is missing"; done
[ -x "$fwrun" ] || die "$fwrun is missing: cargo build --release"
bash tests/firmware/build.sh target/fwtest

name=bpub
fw_addr=169.254.84.1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
web=$(free_port)
echo_port=$(free_port)
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$fwrun" --firmware target/fwtest/fw.ext2 --name "$name" -q \
  --net veth:169.254.84.2/30 --publish "127.0.0.1:$web:80" --publish "127.0.0.1:$echo_port:7" \
  --env HTTPD=80 --env BLOB_MB=64 --ready-when tcp:80 \
  -- /test/service.sh >"$tmp/out" 2>"$tmp/err" &
pid=$!
"$fwrun" wait "$name" --timeout 30s >/dev/null || die "the firmware did not become ready: $(cat "$tmp/err")"
"$fwrun" enter "$name" -- sh -c "ip addr add $fw_addr/30 dev eth0 && ip link set eth0 up && \
  nc -ll -p 7 -e cat </dev/null >/dev/null 2>&1 & exit 0" || die "configuring eth0 inside"
dev=$(ip route get "$fw_addr" | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}')
[ "$dev" = "fw-$name" ] || die "the route to $fw_addr goes over '$dev', not fw-$name"

# Both paths answer before anything is timed.
for url in "http://$fw_addr/" "http://127.0.0.1:$web/"; do
  for _ in $(seq 50); do
    curl --noproxy '*' -sf -m 5 "$url" >/dev/null && break
  done
  curl --noproxy '*' -sf -m 5 "$url" >/dev/null || die "$url does not answer"
done

get() { curl --noproxy '*' -sf -m 60 -o /dev/null -w "$2" "$1"; }
for i in $(seq "$rounds"); do
  echo "veth $(get "http://$fw_addr/blob" '%{time_total} %{size_download}')" >>"$tmp/blob"
  echo "relay $(get "http://127.0.0.1:$web/blob" '%{time_total} %{size_download}')" >>"$tmp/blob"
done
for i in $(seq $((rounds * 10))); do
  echo "veth $(get "http://$fw_addr/" '%{time_starttransfer}')" >>"$tmp/first"
  echo "relay $(get "http://127.0.0.1:$web/" '%{time_starttransfer}')" >>"$tmp/first"
done

python3 - "$tmp" "$fw_addr" "$echo_port" <<'EOF'
import socket, statistics, sys, time
tmp, fw_addr, echo_port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def rows(path):
    out = {"veth": [], "relay": []}
    for line in open(path):
        k, *v = line.split()
        out[k].append([float(x) for x in v])
    return out

def rtt(addr, n=2000):
    s = socket.create_connection(addr, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(100):
        s.sendall(b"x"); s.recv(1)
    times = []
    for _ in range(n):
        t = time.perf_counter(); s.sendall(b"x"); s.recv(1)
        times.append(time.perf_counter() - t)
    s.close()
    return statistics.median(times) * 1e6

med = statistics.median
blob = rows(f"{tmp}/blob")
first = rows(f"{tmp}/first")
size = blob["veth"][0][1]
assert all(r[1] == size for k in blob for r in blob[k]), "a transfer came short"
tv = [r[0] for r in blob["veth"]]; tr = [r[0] for r in blob["relay"]]
ratios = [r / v for r, v in zip(tr, tv)]
fv = [r[0] for r in first["veth"]]; fr = [r[0] for r in first["relay"]]
# Round trips, alternated too.
rv, rr = [], []
for _ in range(3):
    rv.append(rtt((fw_addr, 7))); rr.append(rtt(("127.0.0.1", echo_port)))
mib = size / (1 << 20)
print("## The relay of --publish against --net veth (tests/bench/publish.sh)")
print()
print(f"One run, --net veth and --publish at once; each measure taken both ways in turn (A B A B), from the host.")
print()
print("| measure | over the veth | through the relay | relay / veth |")
print("| --- | --- | --- | --- |")
print(f"| {mib:.0f} MiB transfer (curl, median of {len(tv)}) | {med(tv)*1000:.1f} ms, {mib/med(tv):.0f} MiB/s | {med(tr)*1000:.1f} ms, {mib/med(tr):.0f} MiB/s | {med(ratios):.2f} (pairs {min(ratios):.2f}–{max(ratios):.2f}) |")
print(f"| a new connection's first byte (curl, median of {len(fv)}) | {med(fv)*1e6:.0f} µs | {med(fr)*1e6:.0f} µs | {med(fr)/med(fv):.2f} |")
print(f"| one byte's round trip on an open connection (median of 3×2000) | {med(rv):.0f} µs | {med(rr):.0f} µs | {med(rr)/med(rv):.2f} |")
print()
verdict = "PASS" if med(ratios) <= 2 else "FAIL"
print(f"- {verdict}: the relay moves {mib:.0f} MiB within 2× the veth's time ({med(ratios):.2f}×).")
EOF
