# cgroup-faults.sh: sourced by tests/vm/cgroup.sh (its helpers and
# variables) when fwrun was built with fault injection: a failure right
# after the cgroup is made, or after it is removed, leaves nothing; a
# SIGKILL of fwrun right after it is made leaves it to the next run's sweep.
for step in cgroup teardown:cgroup; do
  FWRUN_FAULT=$step $fwrun --name cgf1 --apparmor off --firmware $fw -- /bin/true 2>/tmp/cgf1.err
  code=$?
  check "fault at $step: exit 125 (got $code)" test $code = 125
  check "fault at $step: no cgroup is left" no_cgroups_left
done
FWRUN_FAULT=cgroup:kill $fwrun --name cgf2 --apparmor off --firmware $fw -- /bin/true 2>/dev/null
check "kill at cgroup: the cgroup is left" test -d $cg/fwrun-cgf2
$fwrun --name cgf3 --apparmor off --firmware $fw -- /bin/true
check "kill at cgroup: the next run sweeps it" no_cgroups_left
check "kill at cgroup: and its state" test -z "$(ls /run/fwrun)"

