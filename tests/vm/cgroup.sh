# cgroup.sh: the guest script proving a run's own cgroup on a cgroup v2
# host (the guest init mounts cgroup2 at /sys/fs/cgroup; the guest's shell
# lives in its root). /payload holds fwrun and the test firmware
# (tests/vm_cgroup.rs puts them there). Prints ok/not ok lines; exits 1 if
# any check failed. Runs skip the AppArmor profile (--apparmor off) to stay
# fast under TCG, but for the delegation run, which proves both together.

failures=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
fwrun=/payload/fwrun
fw=/payload/fw.ext2
cg=/sys/fs/cgroup
show() { sed 's/^/    | /' "$1"; }
# wait_for FILE TEXT: poll (20 s at most) until FILE holds TEXT.
wait_for() {
  i=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2000 ] && return 1
    usleep 10000
  done
}
# wait_dir DIR: poll (20 s at most) until DIR exists.
wait_dir() {
  i=0
  while [ ! -d "$1" ]; do
    i=$((i + 1)); [ $i -gt 2000 ] && return 1
    usleep 10000
  done
}
# field FILE NAME: a number or boolean from the pretty-printed report.
field() { sed -n "s/^ *\"$2\": \\([0-9a-z.]*\\),\\{0,1\\}\$/\\1/p" "$1" | head -n 1; }
# key FILE KEY: the value of "KEY N" in a cgroup file.
key() { sed -n "s/^$2 //p" "$1"; }
# centiseconds since boot.
now_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
no_cgroups_left() { [ -z "$(ls -d $cg/fwrun-* 2>/dev/null)" ]; }
in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

check "cgroup2 is at /sys/fs/cgroup" grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts
check "no fwrun cgroup before the tests" no_cgroups_left

# 1. --memory 64M: a firmware that allocates past it is OOM-killed, said as
#    such (137), and the report shows the kill and a peak near 64 MiB.
$fwrun --name cg1 --apparmor off --memory 64M --report /tmp/cg1.json --firmware $fw \
  -- /bin/sh -c 'x=$(head -c 90000000 /dev/zero | tr "\000" a); echo survived' \
  >/tmp/cg1.out 2>/tmp/cg1.err
code=$?
show /tmp/cg1.out; show /tmp/cg1.err
check "OOM: exit 137 (got $code)" test $code = 137
check "OOM: the kernel's OOM killer is named" \
  grep -qF "killed by the kernel's OOM killer: --memory was 64M" /tmp/cg1.err
check "OOM: the report says the init was OOM-killed" test "$(field /tmp/cg1.json init_oom_killed)" = true
kills=$(field /tmp/cg1.json oom_kills)
check "OOM: the report counts the kill ($kills)" test "${kills:-0}" -ge 1
peak=$(field /tmp/cg1.json memory_peak_bytes)
# memory.peak may pass memory.max by a charge batch (a few pages).
check "OOM: the peak is near 64 MiB ($peak)" in_range "${peak:-0}" 50331648 68157440
check "OOM: memory.max was written" test "$(field /tmp/cg1.json memory_bytes)" = 67108864
check "OOM: no swap allowed" test "$(field /tmp/cg1.json memory_swap_bytes)" = 0
check "OOM: its cgroup is gone" no_cgroups_left
# The reports go to the host, which checks them against the schema.
echo "REPORT-JSON $(tr -d '\n' </tmp/cg1.json)"

# 2. A fork bomb stops at --pids 256; the run ends on --timeout (124); the
#    guest's own shell stays responsive meanwhile. busybox sh refuses ':' as
#    a function name, so the bomb is named b. The init execs sleep after
#    starting it: a shell that cannot fork exits.
$fwrun --name cg2 --apparmor off --pids 256 --timeout 8 --stop-timeout 1 \
  --report /tmp/cg2.json --firmware $fw \
  -- /bin/sh -c 'b(){ b|b& }; b; exec sleep 1000' >/tmp/cg2.out 2>/tmp/cg2.err &
pid=$!
check "bomb: its cgroup appears" wait_dir $cg/fwrun-cg2
i=0
while [ "$(key $cg/fwrun-cg2/pids.events max 2>/dev/null)" = 0 ] && [ $i -lt 500 ]; do
  i=$((i + 1)); usleep 10000
done
refused_during=$(key $cg/fwrun-cg2/pids.events max)
current=$(cat $cg/fwrun-cg2/pids.current)
check "bomb: pids.max is 256" test "$(cat $cg/fwrun-cg2/pids.max)" = 256
check "bomb: forks were refused at the limit ($refused_during)" test "${refused_during:-0}" -gt 0
check "bomb: pids.current stays within 256 ($current)" test "$current" -le 256
t0=$(now_cs)
ls /payload >/dev/null && cat /proc/loadavg >/dev/null && echo responsive >/tmp/cg2.probe
t1=$(now_cs)
# Generous: the VM is emulated (TCG) on a shared machine. Without the pids
# limit the command would not complete at all; the time it took is printed
# (BOMB-PROBE-MS) and shown by tests/vm_cgroup.rs.
echo "BOMB-PROBE-MS $((t1 - t0))0"
check "bomb: a guest command completes within 10 s ($((t1 - t0))0 ms)" test $((t1 - t0)) -lt 1000
check "bomb: the command ran" grep -q responsive /tmp/cg2.probe
wait $pid; code=$?
tail -n 3 /tmp/cg2.err | sed 's/^/    | /'
check "bomb: the run ends on --timeout (124, got $code)" test $code = 124
refused=$(field /tmp/cg2.json pids_refused)
check "bomb: the report's refused forks ($refused) are at least those seen during the run" \
  test "${refused:-0}" -ge "$refused_during"
check "bomb: its cgroup is gone" no_cgroups_left

# 3. --cpus 0.5: a busy loop gets 40-60 % of one CPU over 3 s (cpu.stat).
$fwrun --name cg3 --apparmor off --cpus 0.5 --timeout 6 --stop-timeout 1 --report /tmp/cg3.json \
  --firmware $fw -- /bin/sh -c 'while :; do :; done' >/tmp/cg3.out 2>/tmp/cg3.err &
pid=$!
check "cpus: its cgroup appears" wait_dir $cg/fwrun-cg3
check "cpus: cpu.max is half a CPU" test "$(cat $cg/fwrun-cg3/cpu.max)" = "50000 100000"
usleep 500000
u0=$(key $cg/fwrun-cg3/cpu.stat usage_usec); t0=$(now_cs)
sleep 3
u1=$(key $cg/fwrun-cg3/cpu.stat usage_usec); t1=$(now_cs)
user_during=$(key $cg/fwrun-cg3/cpu.stat user_usec)
pct=$(( (u1 - u0) / ((t1 - t0) * 100) ))
check "cpus: the busy loop got 40-60 % of a CPU ($pct %)" in_range $pct 40 60
wait $pid; code=$?
check "cpus: the run ends on --timeout (124, got $code)" test $code = 124
user=$(field /tmp/cg3.json cpu_user_usec)
sys_=$(field /tmp/cg3.json cpu_system_usec)
check "cpus: the report's user time ($user) is at least what cpu.stat said during the run ($user_during)" \
  test "${user:-0}" -ge "$user_during"
# At most 7 s (--timeout, then --stop-timeout: sh as pid 1 ignores SIGTERM)
# at half a CPU, and a little for the setup.
check "cpus: the report's CPU time ($((user + sys_)) us) fits 7 s at half a CPU" \
  in_range $((user + sys_)) "$u1" 4000000
check "cpus: the default pids limit is in the report" test "$(field /tmp/cg3.json pids)" = 4096
check "cpus: its cgroup is gone" no_cgroups_left

# 4. Delegation, with the AppArmor profile on: the firmware sees its own
#    subtree at /sys/fs/cgroup (its cgroup is /), mounts cgroup2 there itself
#    (answered without a mount), makes a child cgroup, enables a controller
#    and moves a process into it, as a systemd init would. From the guest,
#    that process is under fwrun-cg4.
cat >/tmp/deleg.sh <<'EOF'
set -e
cat /proc/self/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo "mounted cgroup2 again"
mkdir /sys/fs/cgroup/init.scope /sys/fs/cgroup/svc
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs
echo +pids > /sys/fs/cgroup/cgroup.subtree_control
echo 50 > /sys/fs/cgroup/svc/pids.max
sh -c 'echo $$ > /sys/fs/cgroup/svc/cgroup.procs; exec sleep 60' &
while [ -z "$(cat /sys/fs/cgroup/svc/cgroup.procs)" ]; do usleep 10000; done
echo delegated
wait
EOF
$fwrun --name cg4 --bind /tmp/deleg.sh:/deleg.sh:ro --firmware $fw -- /bin/sh /deleg.sh \
  >/tmp/cg4.out 2>/tmp/cg4.err &
pid=$!
check "delegation: the firmware made its cgroups" wait_for /tmp/cg4.out delegated
show /tmp/cg4.out; show /tmp/cg4.err
check "delegation: the firmware's cgroup is its namespace's root" grep -qx '0::/' /tmp/cg4.out
check "delegation: its own cgroup2 mount at /sys/fs/cgroup succeeded" grep -q 'mounted cgroup2 again' /tmp/cg4.out
svc=$(cat $cg/fwrun-cg4/svc/cgroup.procs)
check "delegation: a process is in fwrun-cg4/svc ($svc)" test -n "$svc"
check "delegation: seen from the guest it is under fwrun-cg4" grep -qx '0::/fwrun-cg4/svc' /proc/$svc/cgroup
check "delegation: the controller it enabled holds" test "$(cat $cg/fwrun-cg4/svc/pids.max)" = 50

# 5. SIGKILL of fwrun: the firmware dies with it, its cgroup (with the
#    firmware's own children) stays until the sweep, which removes it.
kill -KILL $pid; wait $pid
check "SIGKILL: the cgroup is left behind at first" test -d $cg/fwrun-cg4
$fwrun --cleanup >/tmp/cg5.out 2>&1
show /tmp/cg5.out
check "SIGKILL: fwrun --cleanup removes the dead run" grep -q 'dead run cg4' /tmp/cg5.out
check "SIGKILL: no fwrun cgroup is left" no_cgroups_left
check "SIGKILL: no state is left" test -z "$(ls /run/fwrun)"

# 6. A run that ends on its own: -v ends with the accounting line, and the
#    report's fields match the cgroup files read while it ran.
$fwrun --name cg6 --apparmor off -v --report /tmp/cg6.json --firmware $fw \
  -- /bin/sh -c 'echo up; while [ ! -e /go ]; do usleep 10000; done; cat /sys/fs/cgroup/memory.peak' \
  >/tmp/cg6.out 2>/tmp/cg6.err &
pid=$!
check "report: the run starts" wait_for /tmp/cg6.out up
peak_during=$(cat $cg/fwrun-cg6/memory.peak)
touch /proc/"$(head -n 1 $cg/fwrun-cg6/cgroup.procs)"/root/go
wait $pid; code=$?
show /tmp/cg6.err
check "report: the run exits 0 (got $code)" test $code = 0
peak=$(field /tmp/cg6.json memory_peak_bytes)
check "report: memory_peak_bytes ($peak) is at least memory.peak read during the run ($peak_during)" \
  test "${peak:-0}" -ge "$peak_during"
check "report: and the firmware's own last reading is no more" test "$(tail -n 1 /tmp/cg6.out)" -le "$peak"
check "report: the path is the run's cgroup" grep -q '"path": "/sys/fs/cgroup/fwrun-cg6"' /tmp/cg6.json
check "-v: the accounting line comes at the end" grep -q '^fwrun: cgroup: memory peak .* MiB, CPU ' /tmp/cg6.err
check "report: no fwrun cgroup is left" no_cgroups_left
echo "REPORT-JSON $(tr -d '\n' </tmp/cg6.json)"

# 7. Limits that do not parse exit 125 before anything is made.
$fwrun --name cg7 --memory 12Q --firmware $fw -- /bin/true 2>/tmp/cg7.err
code=$?
check "a bad --memory exits 125 (got $code)" test $code = 125
check "and leaves nothing" no_cgroups_left

# 8. --cgroup-parent, --io-weight, --memory-swap: the run's cgroup is made
#    under the parent named (which fwrun gives the controllers it needs),
#    with the weight and the swap limit written; the parent is left as it
#    was found, without the run's cgroup.
mkdir $cg/ci.slice
$fwrun --name cg8 --apparmor off --stop-timeout 1 --cgroup-parent ci.slice --io-weight 300 --memory 64M \
  --memory-swap 1M --firmware $fw -- /bin/sh -c 'cat /proc/self/cgroup; echo up; exec sleep 1000' \
  >/tmp/cg8.out 2>/tmp/cg8.err &
pid=$!
check "parent: the run starts" wait_for /tmp/cg8.out up
check "parent: its cgroup is under ci.slice" test -d $cg/ci.slice/fwrun-cg8
check "parent: and not beside fwrun's own" test ! -d $cg/fwrun-cg8
check "parent: the firmware still sees its cgroup as /" grep -qx '0::/' /tmp/cg8.out
check "--io-weight: io.weight says 300 ($(cat $cg/ci.slice/fwrun-cg8/io.weight 2>&1))" \
  grep -qx 'default 300' $cg/ci.slice/fwrun-cg8/io.weight
check "--memory-swap: memory.swap.max is 1 MiB" test "$(cat $cg/ci.slice/fwrun-cg8/memory.swap.max)" = 1048576
check "--memory-swap: memory.max is 64 MiB" test "$(cat $cg/ci.slice/fwrun-cg8/memory.max)" = 67108864
$fwrun stop cg8 >/dev/null 2>&1
wait $pid; code=$?
show /tmp/cg8.err
check "parent: the run ends on its stop (143, got $code)" test $code = 143
check "parent: the run's cgroup is gone from ci.slice" test -z "$(ls -d $cg/ci.slice/fwrun-* 2>/dev/null)"
check "parent: ci.slice itself is left" test -d $cg/ci.slice
rmdir $cg/ci.slice

# 9. --stop-timeout ends in cgroup.kill: a firmware that ignores SIGTERM is
#    killed whole, and so is a process of the guest's moved into the run's
#    cgroup from outside its pid namespace (which only cgroup.kill reaches).
$fwrun --name cg9 --apparmor off --stop-timeout 1 --firmware $fw \
  -- /bin/sh -c 'trap "" TERM; echo up; while :; do usleep 100000; done' \
  >/tmp/cg9.out 2>/tmp/cg9.err &
pid=$!
check "cgroup.kill: the run starts" wait_for /tmp/cg9.out up
sleep 1000 &
outsider=$!
echo $outsider > $cg/fwrun-cg9/cgroup.procs
check "cgroup.kill: a guest process is in the run's cgroup" grep -qx "0::/fwrun-cg9" /proc/$outsider/cgroup
$fwrun stop cg9 >/dev/null 2>&1
wait $pid; code=$?
show /tmp/cg9.err
check "cgroup.kill: the run ends killed at --stop-timeout (143, got $code)" test $code = 143
check "cgroup.kill: the stop says it killed every process" grep -q 'killed (every process of it)' /tmp/cg9.err
# dies_soon PID: the process is dead (gone, or a zombie the shell has not
# reaped yet) within 10 s; else it is killed here, so that nothing waits
# for it, and the check fails.
dies_soon() {
  i=0
  while [ -e /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 1000 ] && { kill -KILL $1; return 1; }
    usleep 10000
  done
}
check "cgroup.kill: the guest's process in the run's cgroup was killed too" dies_soon $outsider
wait $outsider; ocode=$?
check "cgroup.kill: it died of SIGKILL (137, got $ocode)" test $ocode = 137
check "cgroup.kill: no fwrun cgroup is left" no_cgroups_left

# 10. With fault injection built in (the full test run), the fault steps of
#    the cgroup (tests/vm/cgroup-faults.sh, put in the payload only then;
#    tests/vm_cgroup.rs counts its checks when it does, and says on stderr
#    that it skipped them when it does not).
[ -e /payload/cgroup-faults.sh ] && . /payload/cgroup-faults.sh

[ $failures -eq 0 ]
