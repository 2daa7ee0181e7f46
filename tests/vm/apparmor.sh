# apparmor.sh: the guest script proving fwrun's AppArmor layer on a real
# AppArmor kernel. /payload holds fwrun and the test firmware images
# (tests/vm.rs puts them there). Prints ok/not ok lines; exits 1 if any
# check failed. tests/vm.rs counts the checks this script (and each firmware
# check script it runs as the init) must print from their text, and requires
# exactly that many: the rules it counts by are in tests/common/plan.rs (in
# short: one helper call per check, loops over literal words, no check under
# a condition).

failures=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
profiles=/sys/kernel/security/apparmor/profiles
fwrun=/payload/fwrun
fw=/payload/fw.ext2
# A run's profile is fwrun-NAME-ID, ID eight hex digits fresh for every run.
inst='[0-9a-f]\{8\}'
# loaded NAME: run NAME's profile is loaded, in enforce mode (exactly one).
loaded() { [ "$(grep -c "^fwrun-$1-$inst (enforce)\$" "$profiles")" = 1 ]; }
gone() { ! grep -q "^fwrun-$1-$inst " "$profiles"; }
# wait_for FILE TEXT: poll (5 s at most) until FILE holds TEXT.
wait_for() {
  i=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 500 ] && return 1
    usleep 10000
  done
}
show() { sed 's/^/    | /' "$1"; }
# A negative control's output, shown but not counted.
show_control() { sed 's/^/    : /' "$1"; }
# AppArmor's own records in the kernel log, read apart from fwrun's parser.
# klog_mark forgets what the log held so far (busybox dmesg -c; fwrun reads
# /dev/kmsg, which this does not touch). klog ERE... polls (5 s at most:
# the records come from the audit thread, a moment after the fact) until a
# line since the mark matches every ERE.
klog_mark() { dmesg -c >/dev/null; }
klog_has() { l=$(dmesg | grep -E "$1"); shift; for p in "$@"; do l=$(echo "$l" | grep -E "$p"); done; [ -n "$l" ]; }
klog() {
  i=0
  while ! klog_has "$@"; do
    i=$((i + 1)); [ $i -gt 500 ] && return 1
    usleep 10000
  done
}
# denied NAME ERE: the kernel logged a denial by run NAME's profile, ERE
# matching the record.
denied() { klog 'apparmor="DENIED"' "profile=\"fwrun-$1-[0-9a-f]{8}\"" "$2"; }
# was_loaded NAME: the kernel logged the load of run NAME's profile since
# the mark (for a run that ends before its profile can be looked at).
was_loaded() { klog 'apparmor="STATUS"' 'operation="profile_load"' "name=\"fwrun-$1-[0-9a-f]{8}\""; }
# What the guest's /proc and /sys hold, for check.sh and device-rcs.sh.
host_proc=$(ls /proc | grep -v '^[0-9]' | tr '\n' ' ')
host_sys=$(ls /sys | tr '\n' ' ')
[ -d /sys/devices/virtual/powercap ] && host_sys="$host_sys devices/virtual/powercap"

# 1. The profile is loaded in enforce mode while the firmware runs, the
#    init runs under it, and it is gone after the run.
$fwrun --name aa1 --firmware $fw -- /test/signals.sh >/tmp/aa1.out 2>/tmp/aa1.err &
pid=$!
check "run aa1 starts" wait_for /tmp/aa1.out ready
check "its profile is loaded in enforce mode" loaded aa1
init=$(for p in /proc/[0-9]*; do grep -q "^fwrun-aa1-$inst " $p/attr/current 2>/dev/null && echo ${p#/proc/}; done | head -n 1)
check "the init's attr/current names the profile" test -n "$init"
check "fwrun itself is not confined" grep -q unconfined /proc/$pid/attr/current
kill -TERM $pid; wait $pid; code=$?
check "SIGTERM stops it (exit 143, got $code)" test $code = 143
check "the profile is gone after the run" gone aa1
check "no state is left" test -z "$(ls /run/fwrun)"

# 2. What a firmware must never manage is refused, even after it mounts its
#    own /proc and /sys, and fwrun's report lists it. The profile is the
#    second lock on the doors the kernel-enforced layers close: to prove it
#    on its own, these runs open the first lock (--seccomp off, --userns
#    off, and the capabilities the profile denies given back).
alone="--seccomp off --userns off --cap-add mknod --cap-add sys_time --cap-add sys_module"
$fwrun --name aa2 $alone --firmware $fw -- /test/escape.sh >/tmp/aa2.out 2>/tmp/aa2.err
code=$?
show /tmp/aa2.out; show /tmp/aa2.err
check "escape.sh: every check passed (exit $code)" test $code = 0
check "escape.sh ran under the profile" grep -q "^attr=fwrun-aa2-$inst (enforce)" /tmp/aa2.out
for what in 'open /proc/sysrq-trigger' '/proc/sys/vm/drop_caches' '/proc/sys/kernel/panic' \
    '/sys/kernel/mm/transparent_hugepage/enabled' '/proc/kcore' 'capable mknod' 'capable sys_time' \
    'capable sys_module' '(proc)' '(sysfs)' '(devtmpfs)'; do
  check "the denial report lists $what" grep -qF "$what" /tmp/aa2.err
done
check "the report says DENIED" grep -q 'AppArmor DENIED' /tmp/aa2.err
# The same, from the kernel's records rather than fwrun's reading of them.
for rec in 'operation="open".*name="/proc/sysrq-trigger"' 'name="/proc/sys/vm/drop_caches"' \
    'name="/proc/sys/kernel/panic"' 'name="/sys/kernel/mm/transparent_hugepage/enabled"' \
    'name="/proc/kcore"' 'capname="mknod"' 'capname="sys_time"' 'capname="sys_module"' \
    'operation="mount".*fstype="proc"' 'operation="mount".*fstype="sysfs"' \
    'operation="mount".*fstype="devtmpfs"'; do
  check "the kernel logged the denial $rec" denied aa2 "$rec"
done
check "the profile is gone after the run" gone aa2

# 2b. With --allow-mknod the path rules still refuse the dangerous nodes.
$fwrun --name aa3 $alone --allow-mknod --firmware $fw -- /test/devices.sh >/tmp/aa3.out 2>/tmp/aa3.err
code=$?
show /tmp/aa3.out; show /tmp/aa3.err
check "devices.sh: every check passed (exit $code)" test $code = 0
check "the report lists /dev/mem" grep -qF 'mknod /dev/mem' /tmp/aa3.err

# 2b'. The negative control: escape.sh again with the profile off too
#      (--apparmor off) and the kernel-enforced locks opened as far as the
#      debugging flags go (sys_rawio given back for /proc/kcore). What the
#      profile refused in aa2 must now go through, or aa2 proved nothing.
#      This VM is thrown away; the clock it sets is put back. escape.sh
#      runs through /bin/sh so that its lines (which expect refusals) are
#      not counted; they are shown with ':'.
t0=$(date +%s)
u0=$(cut -d. -f1 /proc/uptime)
$fwrun --name ctl1 --apparmor off $alone --cap-add sys_rawio --firmware $fw \
  -- /bin/sh /test/escape.sh >/tmp/ctl1.out 2>/tmp/ctl1.err
date -s "@$((t0 + $(cut -d. -f1 /proc/uptime) - u0))" >/dev/null
show_control /tmp/ctl1.out; show_control /tmp/ctl1.err
for what in 'writing /proc/sysrq-trigger' 'writing /proc/sys/vm/drop_caches' \
    'writing /proc/sys/kernel/panic' 'writing under /sys/kernel' 'reading /proc/kcore' \
    'mknod of a block device in /dev' 'mknod of a block device in /tmp' 'mknod of /dev/mem' \
    'mknod of a watchdog' 'setting the clock (date -s)' 'mounting proc outside /proc' \
    'mounting sysfs outside /sys' 'mounting devtmpfs'; do
  check "without the locks, $what goes through" grep -qF "not ok - $what: it was allowed" /tmp/ctl1.out
done
check "without the locks, loading a module is not refused (the file is no module)" \
  grep -qF 'not ok - loading a module failed for another reason' /tmp/ctl1.out
check "the guest's clock is back" test "$(date +%Y)" != 2001

# 2c. --follow-denials prints them while the firmware runs.
$fwrun --name aa4 $alone --follow-denials --firmware $fw -- /bin/sh -c 'umount -l /proc; mount -t proc proc /proc; echo h > /proc/sysrq-trigger; exit 0' 2>/tmp/aa4.err
check "--follow-denials prints a denial live" grep -qE '^fwrun: AppArmor DENIED open /proc/sysrq-trigger' /tmp/aa4.err
show /tmp/aa4.err

# 2d. Both locks together: a device's rcS runs unchanged, and the accidents
#     of tests/confinement.rs are refused with the profile loaded too.
klog_mark
$fwrun --name aa8 --env "HOST_PROC=$host_proc" --firmware $fw -- /test/device-rcs.sh >/tmp/aa8.out 2>/tmp/aa8.err
code=$?
show /tmp/aa8.out; show /tmp/aa8.err
check "device-rcs.sh under the profile: every check passed (exit $code)" test $code = 0
check "aa8's profile was loaded" was_loaded aa8
# The probes write values other than the guest's (this VM is thrown away):
# a write that went through shows in the "unchanged" checks, and
# put_back then restores the guest's.
cad=$(cat /proc/sys/kernel/ctrl-alt-del)
printk=$(cat /proc/sys/kernel/printk)
level=${printk%%[!0-9]*}
other_cad=1; [ "$cad" = 0 ] || other_cad=0
other_level=2; [ "$level" -gt 1 ] && other_level=$((level - 1))
put_back() { echo "$cad" >/proc/sys/kernel/ctrl-alt-del; echo "$printk" >/proc/sys/kernel/printk; }
before=$(sha256sum $fw)
klog_mark
$fwrun --name aa9 --report /tmp/aa9.json --env CAD=$other_cad --env LEVEL=$other_level \
  --env IMAGE=$fw --env MODULE=/test/loop.ko --bind /payload/loop.ko:/test/loop.ko:ro \
  --firmware $fw -- /test/accidents.sh >/tmp/aa9.out 2>/tmp/aa9.err
code=$?
show /tmp/aa9.out; show /tmp/aa9.err
check "accidents.sh under the profile: every check passed (exit $code)" test $code = 0
check "aa9's profile was loaded" was_loaded aa9
check "insmod tried a real module file" grep -q 'ok - insmod /test/loop.ko' /tmp/aa9.out
check "the guest's ctrl-alt-del is unchanged" test "$(cat /proc/sys/kernel/ctrl-alt-del)" = "$cad"
check "the guest's printk is unchanged" test "$(cat /proc/sys/kernel/printk)" = "$printk"
put_back
check "the image is unchanged" test "$(sha256sum $fw)" = "$before"
check "fwrun refused the module load" grep -q '"syscall": *"f\?init_module"' /tmp/aa9.json

# 2d'. check.sh with the profile loaded, in both init modes. This kernel
#      has /proc/kcore, /proc/sysrq-trigger and /proc/acpi, which the host
#      tier's kernel may lack, and /proc/asound (tests/vm.rs has the guest
#      load snd): their masks are checked here for real.
klog_mark
$fwrun --name chk1 --env "HOST_PROC=$host_proc" --env "HOST_SYS=$host_sys" \
  --firmware $fw -- /test/check.sh >/tmp/chk1.out 2>/tmp/chk1.err
code=$?
show /tmp/chk1.out; show /tmp/chk1.err
check "check.sh under the profile: every check passed (exit $code)" test $code = 0
check "chk1's profile was loaded" was_loaded chk1
klog_mark
$fwrun --name chk2 --as-pid2 --env INIT_PID=2 --env "HOST_PROC=$host_proc" --env "HOST_SYS=$host_sys" \
  --firmware $fw -- /test/check.sh >/tmp/chk2.out 2>/tmp/chk2.err
code=$?
show /tmp/chk2.out; show /tmp/chk2.err
check "check.sh under the profile, --as-pid2: every check passed (exit $code)" test $code = 0
check "chk2's profile was loaded" was_loaded chk2
for name in kcore sysrq-trigger acpi asound; do
  check "this kernel has /proc/$name (so check.sh checked it)" test -e /proc/$name
done

# 2e. --net host: the network is the host's. With both locks, and with the
#     profile alone (--seccomp off, --userns off, net_admin given back), the
#     firmware can change neither the guest's lo MTU nor its network sysctls; the
#     profile's refusals are in its report. Under --net none the same
#     changes are the firmware's own, and allowed.
#     net-host.sh writes values other than the guest's, which same_net
#     would see; net_back restores them should a refusal be missing.
mtu=$(cat /sys/class/net/lo/mtu)
fwd=$(cat /proc/sys/net/ipv4/ip_forward)
same_net() {
  test "$(cat /sys/class/net/lo/mtu)" = "$mtu" &&
    test "$(cat /proc/sys/net/ipv4/ip_forward)" = "$fwd"
}
net_back() { ip link set lo mtu "$mtu"; echo "$fwd" >/proc/sys/net/ipv4/ip_forward; }
$fwrun --name nh1 --net host --firmware $fw -- /test/net-host.sh any >/tmp/nh1.out 2>/tmp/nh1.err
code=$?
show /tmp/nh1.out; show /tmp/nh1.err
check "net-host.sh with both locks: every change refused (exit $code)" test $code = 0
check "it ran under the profile" grep -q "^attr=fwrun-nh1-$inst (enforce)" /tmp/nh1.out
check "the guest's lo MTU and ip_forward are unchanged" same_net
net_back
$fwrun --name nh2 --net host --seccomp off --userns off --cap-add net_admin --firmware $fw \
  -- /test/net-host.sh profile >/tmp/nh2.out 2>/tmp/nh2.err
code=$?
show /tmp/nh2.out; show /tmp/nh2.err
check "net-host.sh with the profile alone: every change refused (exit $code)" test $code = 0
for what in 'capable net_admin' 'open /proc/sys/net/ipv4/ip_forward' '/sys/devices/virtual/net/lo/mtu'; do
  check "the denial report lists $what" grep -qF "$what" /tmp/nh2.err
done
check "the guest's lo MTU and ip_forward are unchanged" same_net
net_back
$fwrun --name nh3 --seccomp off --userns off --firmware $fw -- /bin/sh -c '
  umount -l /proc; mount -t proc proc /proc; umount -l /sys; mount -t sysfs sysfs /sys
  ip link set lo mtu 1400 && echo "mtu=$(cat /sys/class/net/lo/mtu)"
  v=$(cat /proc/sys/net/ipv4/ip_forward) && echo "$v" > /proc/sys/net/ipv4/ip_forward && echo forward-written' \
  >/tmp/nh3.out 2>/tmp/nh3.err
show /tmp/nh3.out; show /tmp/nh3.err
check "under --net none the firmware sets its own lo MTU" grep -qx 'mtu=1400' /tmp/nh3.out
check "and writes its own ip_forward" grep -qx forward-written /tmp/nh3.out
check "the guest's lo MTU and ip_forward are still unchanged" same_net

# 2f. fwrun enter: a command run inside a running firmware is confined as
#     its init is. It enters the run's profile, and the probes of 2d give
#     through it the verdicts they gave as the init (loop device numbers
#     aside), with both locks; with the first lock open (--seccomp off and
#     the capabilities back), the profile alone refuses escape.sh's attempts.
verdicts() { grep -E '^(not )?ok - ' "$1" | sed 's/loop[0-9]*/loopN/g'; }
same_verdicts() { verdicts "$1" >/tmp/v1; verdicts "$2" >/tmp/v2; [ -s /tmp/v1 ] && cmp -s /tmp/v1 /tmp/v2; }
$fwrun --name aa10 --ready-when console:'login:' --bind /payload/loop.ko:/test/loop.ko:ro \
  --firmware $fw -- /test/service.sh >/tmp/aa10.out 2>/tmp/aa10.err &
pid=$!
check "fwrun wait: run aa10 is ready" $fwrun wait aa10 --timeout 120s
attr=$($fwrun enter aa10 -- cat /proc/self/attr/current 2>/dev/null)
check "the entered command runs under the run's profile ($attr)" sh -c "echo '$attr' | grep -q '^fwrun-aa10-$inst (enforce)\$'"
$fwrun enter --env "HOST_PROC=$host_proc" aa10 -- /test/device-rcs.sh >/tmp/aa10-rcs.out 2>&1
code=$?
show /tmp/aa10-rcs.out
check "device-rcs.sh through fwrun enter: every check passed (exit $code)" test $code = 0
check "device-rcs.sh: the same verdicts as from the init" same_verdicts /tmp/aa8.out /tmp/aa10-rcs.out
$fwrun enter --env CAD=$other_cad --env LEVEL=$other_level --env IMAGE=$fw --env MODULE=/test/loop.ko \
  aa10 -- /test/accidents.sh >/tmp/aa10-acc.out 2>&1
code=$?
show /tmp/aa10-acc.out
check "accidents.sh through fwrun enter: every check passed (exit $code)" test $code = 0
check "accidents.sh: the same verdicts as from the init" same_verdicts /tmp/aa9.out /tmp/aa10-acc.out
check "the guest's ctrl-alt-del is still unchanged" test "$(cat /proc/sys/kernel/ctrl-alt-del)" = "$cad"
check "the guest's printk is still unchanged" test "$(cat /proc/sys/kernel/printk)" = "$printk"
put_back
$fwrun stop aa10; code=$?
check "fwrun stop aa10 (exit $code)" test $code = 0
wait $pid; code=$?
check "the run exits as for SIGTERM (143, got $code)" test $code = 143
check "its profile is gone" gone aa10
$fwrun --name aa11 $alone --ready-when console:'login:' --firmware $fw -- /test/service.sh \
  >/tmp/aa11.out 2>/tmp/aa11.err &
pid=$!
check "fwrun wait: run aa11 is ready" $fwrun wait aa11 --timeout 120s
$fwrun enter aa11 -- /test/escape.sh >/tmp/aa11-esc.out 2>&1
code=$?
show /tmp/aa11-esc.out
check "escape.sh through fwrun enter, the profile alone: every check passed (exit $code)" test $code = 0
$fwrun stop aa11
wait $pid
show /tmp/aa11.err
check "the run's denial report lists the entered command's sysrq-trigger write" \
  grep -qF 'open /proc/sysrq-trigger' /tmp/aa11.err

# 2g. Root only inside: what a curious firmware tries once it is root (the
#     probes of tests/userns.rs on the host), here under the profile as
#     well as in its user namespace: every one refused, the guest as it was.
mkdir -p /tmp/data && chmod 755 /tmp/data
thp=$(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled)
$fwrun --name un1 --allow-mknod --bind /tmp/data:/data:ro --env CAD=$cad --env THP=$thp \
  --env NULLMODE=$(stat -c %a /dev/null) --env DATAMODE=755 --firmware $fw \
  -- /test/userns.sh >/tmp/un1.out 2>/tmp/un1.err
code=$?
show /tmp/un1.out; show /tmp/un1.err
check "userns.sh under the profile: every probe refused (exit $code)" test $code = 0
check "the guest's ctrl-alt-del is still unchanged" test "$(cat /proc/sys/kernel/ctrl-alt-del)" = "$cad"
check "the read-only bind's source is still 755" test "$(stat -c %a /tmp/data)" = 755

# 2h. --deny PATH: the profile refuses the path named, and only it; without
#     --deny the same read goes through.
$fwrun --name dn0 --firmware $fw -- /bin/sh -c 'cat /etc/fw-version >/dev/null && echo read-ok' \
  >/tmp/dn0.out 2>&1
check "without --deny, /etc/fw-version is read" grep -qx read-ok /tmp/dn0.out
$fwrun --name dn1 --deny /etc/fw-version --report /tmp/dn1.json --firmware $fw \
  -- /bin/sh -c 'cat /etc/fw-version 2>&1; echo "read=$?"; cat /etc/passwd >/dev/null && echo other-ok' \
  >/tmp/dn1.out 2>/tmp/dn1.err
show /tmp/dn1.out; show /tmp/dn1.err
check "--deny /etc/fw-version: the read fails" grep -qx 'read=1' /tmp/dn1.out
check "--deny /etc/fw-version: for want of permission" grep -q 'fw-version.*Permission denied' /tmp/dn1.out
check "--deny /etc/fw-version: another file is still read" grep -qx other-ok /tmp/dn1.out
check "--deny /etc/fw-version: the report's denials list it" grep -q '"target": *"/etc/fw-version"' /tmp/dn1.json

# 3. What a firmware normally does still works: the demo boots (its rcS
#    mounts proc, sysfs, devpts, tmpfs), runs its services, powers off.
klog_mark
$fwrun --name aa5 --firmware $fw >/tmp/aa5.out 2>/tmp/aa5.err
code=$?
show /tmp/aa5.out; show /tmp/aa5.err
check "the demo firmware boots and powers off under the profile (exit $code)" test $code = 0
check "aa5's profile was loaded (so nothing denied means something)" was_loaded aa5
check "it said it powered off" grep -q 'firmware powered off' /tmp/aa5.err
check "nothing was denied" sh -c '! grep -q DENIED /tmp/aa5.err'

# 4. fwrun SIGKILLed mid-run: its profile stays loaded until a sweep.
$fwrun --name aa6 --firmware $fw -- /test/signals.sh >/tmp/aa6.out 2>&1 &
pid=$!
check "run aa6 starts" wait_for /tmp/aa6.out ready
kill -KILL $pid; wait $pid
# confined NAME: a live process runs under run NAME's profile.
confined() {
  for p in /proc/[0-9]*; do
    grep -q "^fwrun-$1-$inst " $p/attr/current 2>/dev/null && ! grep -q '^State:.*Z' $p/status 2>/dev/null && return 0
  done
  return 1
}
# gone_soon NAME: no live process runs under run NAME's profile within
# 10 s: generous, as the VM is emulated (TCG) on a shared machine; the
# firmware dies with fwrun (its parent-death signal), and the time it took
# is printed (DEATH-MS), for tests/vm.rs to show.
gone_soon() {
  i=0
  while confined "$1"; do
    i=$((i + 1)); [ $i -gt 1000 ] && return 1
    usleep 10000
  done
  echo "DEATH-MS $((i * 10))"
}
check "the confined firmware died with fwrun (within 10 s)" gone_soon aa6
check "after SIGKILL the dead run's profile is still loaded" loaded aa6
$fwrun --cleanup >/tmp/cleanup.out 2>&1
show /tmp/cleanup.out
check "fwrun --cleanup unloads it" gone aa6
check "and removes its state" test -z "$(ls /run/fwrun)"
$fwrun --name aa7 --firmware $fw -- /test/signals.sh >/tmp/aa7.out 2>&1 &
pid=$!
check "run aa7 starts" wait_for /tmp/aa7.out ready
kill -KILL $pid; wait $pid
check "after SIGKILL aa7's profile is still loaded" loaded aa7
check "the next run exits 0" $fwrun --firmware $fw -- /bin/true
check "the next run sweeps a killed run's profile too" gone aa7

# 4b. One name, two runs. A second run of a live run's name is refused and
#     leaves the live run's profile loaded; a sweep beside it too. After a
#     SIGKILL, the next run of that name loads a profile of its own (the
#     dead run's is swept) and a sweep beside it leaves it loaded.
# profile_of NAME: the profile of run NAME that is loaded, if any.
profile_of() { sed -n "s/^\(fwrun-$1-$inst\) (enforce)\$/\1/p" "$profiles"; }
# holds NAME PROFILE: run NAME's one profile is PROFILE, and its state is there.
holds() { test -n "$2" && test "$(profile_of "$1")" = "$2" && test -e "/run/fwrun/$1/lock"; }
$fwrun --name dup --firmware $fw -- /test/signals.sh >/tmp/dup1.out 2>&1 &
pid=$!
check "run dup starts" wait_for /tmp/dup1.out ready
first=$(profile_of dup)
$fwrun --name dup --firmware $fw -- /bin/true 2>/tmp/dup2.err
code=$?
show /tmp/dup2.err
check "a second run named dup is refused (exit 125, got $code)" test $code = 125
check "it says dup is already running" grep -q "'dup' is already running" /tmp/dup2.err
check "the first run keeps its profile ($first) and state" holds dup "$first"
$fwrun --cleanup >/dev/null 2>&1
check "and keeps them beside fwrun --cleanup" holds dup "$first"
kill -KILL $pid; wait $pid
$fwrun --name dup --firmware $fw -- /test/signals.sh >/tmp/dup3.out 2>&1 &
pid=$!
check "the next run named dup starts after a SIGKILL" wait_for /tmp/dup3.out ready
second=$(profile_of dup)
check "it loaded a profile of its own ($second), and the dead run's is gone" \
  sh -c "test -n '$second' && test '$second' != '$first' && ! grep -q '^$first ' $profiles"
check "its init runs under it" confined dup
$fwrun --cleanup >/dev/null 2>&1
check "fwrun --cleanup beside it leaves its profile and state" holds dup "$second"
kill -TERM $pid; wait $pid
check "then its profile is gone" gone dup
check "and its state" test -z "$(ls /run/fwrun)"

# 5. --apparmor require works here, and nothing of fwrun's is left.
check "--apparmor require runs on this kernel" $fwrun --apparmor require --firmware $fw -- /bin/true
check "no fwrun profile is left" sh -c "! grep -q '^fwrun' $profiles"
# Loop devices free themselves (autoclear) once their last mount is gone.
no_loops() {
  i=0
  while grep -l . /sys/block/loop*/loop/backing_file 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 500 ] && return 1
    usleep 10000
  done >/dev/null
}
check "no loop device is left" no_loops
# 6. A parser that is missing or fails is a launcher error, with its words.
$fwrun --apparmor require --apparmor-parser /nonexistent --firmware $fw -- /bin/true 2>/tmp/p1.err
code=$?
check "a missing parser: exit 125 (got $code)" test $code = 125
check "the message names it" grep -q '/nonexistent' /tmp/p1.err
$fwrun --apparmor require --apparmor-parser /bin/false --firmware $fw -- /bin/true 2>/tmp/p2.err
code=$?
check "a failing parser: exit 125 (got $code)" test $code = 125
check "the message says it could not load the profile" grep -q 'could not load the profile' /tmp/p2.err
show /tmp/p1.err; show /tmp/p2.err
check "no state is left after them" test -z "$(ls /run/fwrun)"
# 7. Fault injection at the AppArmor steps (the binary under test is built
#    with the fault-injection feature, which the first check proves): a
#    failure there leaves nothing; a SIGKILL there leaves the profile for
#    the sweep, and nothing after it. Each run's profile was loaded (the
#    kernel logged it) before it is found gone.
faults_injected() { FWRUN_FAULT=namespace $fwrun --firmware $fw -- /bin/true 2>/dev/null; test $? = 125; }
check "the binary under test injects faults (FWRUN_FAULT=namespace: exit 125)" faults_injected
for step in apparmor teardown:apparmor; do
  klog_mark
  FWRUN_FAULT=$step $fwrun --name f1 --firmware $fw -- /bin/true 2>/tmp/f.err
  code=$?
  check "FWRUN_FAULT=$step: exit 125 (got $code)" test $code = 125
  check "FWRUN_FAULT=$step: its profile was loaded" was_loaded f1
  check "FWRUN_FAULT=$step: the profile is gone" gone f1
  check "FWRUN_FAULT=$step: no state is left" test -z "$(ls /run/fwrun)"
  klog_mark
  FWRUN_FAULT=$step:kill $fwrun --name f2 --firmware $fw -- /bin/true 2>/dev/null
  code=$?
  check "FWRUN_FAULT=$step:kill kills fwrun (got $code)" test $code = 137
  check "FWRUN_FAULT=$step:kill: its profile was loaded" was_loaded f2
  $fwrun --cleanup >/dev/null 2>&1
  check "after $step:kill, --cleanup leaves no profile" gone f2
  check "after $step:kill, --cleanup leaves no state" test -z "$(ls /run/fwrun)"
done

# 8. What the profile costs: -v phase times of 5 runs with and without it.
for mode in require off; do
  for i in 1 2 3 4 5; do
    $fwrun -v --apparmor $mode --firmware $fw -- /bin/true 2>&1 | sed -n "s/^fwrun: \(.*\) (\([0-9.]*\) ms)\$/COST $mode \1: \2/p" | sed 's/ fwrun-[^ ]*//; s/pid [0-9]*/pid N/; s/loop[0-9]*/loopN/; s/run [^ ]* (host pid [0-9]*)/run/'
  done
done

echo "failures=$failures"
[ $failures = 0 ]
