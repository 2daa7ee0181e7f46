#!/bin/sh
# Checks, from inside, the world fwrun prepared, before the firmware mounts
# anything of its own. One "ok"/"not ok" line per check; the exit status is
# the number of failures.
fails=0
check() {
  desc=$1; shift
  if "$@" >/dev/null 2>&1; then echo "ok - $desc"; else echo "not ok - $desc"; fails=$((fails + 1)); fi
}
refused() { ! "$@"; }
mounted_ro() { awk -v m="$1" '$5 == m { split($6, o, ","); ro = (o[1] == "ro") } END { exit !ro }' /proc/self/mountinfo; }
few_processes() { [ "$(ls -d /proc/[0-9]* | wc -l)" -le 4 ]; }
only_lo() { [ "$(ls /sys/class/net)" = "lo" ] && [ $(( $(cat /sys/class/net/lo/flags) & 1 )) = 1 ]; }
no_block_devices() { [ -z "$(find /dev -type b)" ]; }
no_dangerous_nodes() { [ -z "$(ls /dev | grep -E '^(mem|kmem|port|watchdog|rtc|sd|hd|vd|nvme|loop|mmcblk|dm-|md|sr|mtd)')" ]; }
mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
kcore_masked() { [ "$(head -c 16 /proc/kcore | wc -c)" = 0 ]; }

echo "hostname=$(hostname)"
echo "pid=$$"
check "init is pid 1" [ "$$" = 1 ]
check "only the firmware's own processes are visible" few_processes
check "only lo, and it is up" only_lo
check "/proc/sys is read-only" mounted_ro /proc/sys
check "/proc/sys cannot be written" refused sh -c "echo $(hostname) > /proc/sys/kernel/hostname"
check "/sys is read-only" mounted_ro /sys
check "/sys cannot be written" refused sh -c 'echo 65536 > /sys/class/net/lo/mtu'
check "/proc/sysrq-trigger cannot be written" refused sh -c 'echo h > /proc/sysrq-trigger'
check "/proc/kcore is masked" kcore_masked
check "/dev holds no block device" no_block_devices
check "/dev holds no mem, kmem, port, watchdog, rtc or disk node" no_dangerous_nodes
check "/dev/null works" sh -c 'echo x > /dev/null'
check "/dev/pts is mounted" mounted /dev/pts
check "the root is writable" sh -c 'echo "written by the firmware" > /etc/fw-written'
echo "failures=$fails"
exit "$fails"
