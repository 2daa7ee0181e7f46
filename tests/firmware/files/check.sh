#!/bin/sh
# Checks, from inside, the world fwrun prepared, before the firmware mounts
# anything of its own. One "ok"/"not ok" line per check, each check on a
# line of its own that starts with "check " (the tests count those lines to
# know how many must pass); the exit status is the number of failures.
#
# Environment (from the test):
#   HOST_PROC  the names in the host's /proc, pids aside: a masked path the
#              host's kernel has must be masked here; one it has not must
#              be absent here too (there is nothing to mask)
#   HOST_SYS   the same for the host's /sys, plus the deeper masked paths
#              the host has (devices/virtual/powercap)
#   INIT_PID   this script's pid: 1 (default), or 2 under --as-pid2
# Every probe is harmless if the protection is missing: files are opened
# for writing but never written, and a masked file is read only once it is
# known to be the null device.
fails=0
check() {
  desc=$1; shift
  if "$@" >/dev/null 2>&1; then echo "ok - $desc"; else echo "not ok - $desc"; fails=$((fails + 1)); fi
}
init_pid=${INIT_PID:-1}
mounted_ro() { awk -v m="$1" '$5 == m { split($6, o, ","); ro = (o[1] == "ro") } END { exit !ro }' /proc/self/mountinfo; }
# The file system type and per-mount options of the mount at $1 (the last).
mount_at() { awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") t = $(i + 1) " " $6 } END { if (t == "") exit 1; print t }' /proc/self/mountinfo; }
few_processes() { [ "$(ls -d /proc/[0-9]* | wc -l)" -le $((3 + init_pid)) ]; }
only_lo() { [ "$(ls /sys/class/net)" = "lo" ] && [ $(( $(cat /sys/class/net/lo/flags) & 1 )) = 1 ]; }
no_block_devices() { [ -z "$(find /dev -type b)" ]; }
no_dangerous_nodes() { [ -z "$(ls /dev | grep -E '^(mem|kmem|port|watchdog|rtc|sd|hd|vd|nvme|loop|mmcblk|dm-|md|sr|mtd)')" ]; }
mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# host_has /proc/NAME or /sys/NAME: the host's kernel has it (the test says).
host_has() {
  case $1 in
    /proc/*) list=$HOST_PROC ;;
    /sys/*) list=$HOST_SYS ;;
  esac
  [ -n "$list" ] || { echo "HOST_PROC and HOST_SYS must be set" >&2; return 2; }
  for n in $list; do [ "${1#/*/}" = "$n" ] && return 0; done
  return 1
}
# masked_file PATH: the null device is bound over it (character device 1:3)
# and it reads empty; or the host has no such file and neither has this
# /proc.
masked_file() {
  host_has "$1"; case $? in 1) [ ! -e "$1" ]; return ;; 2) return 1 ;; esac
  [ -c "$1" ] && [ "$(stat -c %t:%T "$1")" = 1:3 ] && [ "$(head -c 16 "$1" | wc -c)" = 0 ]
}
# own_log PATH: fwrun's FIFO of the firmware's own kernel log is bound over
# it (never read here: were it the host's, that would take the host's log).
own_log() { [ -p "$1" ] && mounted "$1"; }
# masked_dir PATH: an empty read-only tmpfs is mounted on it; or the host
# has no such directory and neither has this one.
masked_dir() {
  host_has "$1"; case $? in 1) [ ! -e "$1" ]; return ;; 2) return 1 ;; esac
  set -- "$1" "$(mount_at "$1")"
  case $2 in "tmpfs ro,"* | "tmpfs ro") ;; *) return 1 ;; esac
  [ -d "$1" ] && [ -z "$(ls -A "$1")" ]
}
# write_refused FILE: opening FILE for writing (nothing is written) fails
# with EROFS or EACCES, not for another reason (a missing file, say).
write_refused() {
  [ -e "$1" ] || return 1
  err=$(sh -c 'exec 3>>"$1"' sh "$1" 2>&1) && return 1
  case $err in *"Read-only file system"* | *"Permission denied"*) return 0 ;; esac
  return 1
}
# read_only_file FILE: write_refused; or the host has no such file and
# neither has this /proc.
read_only_file() {
  host_has "$1"; case $? in 1) [ ! -e "$1" ]; return ;; 2) return 1 ;; esac
  write_refused "$1"
}
# read_only_dir DIR: a read-only mount, and a file in it cannot be opened
# for writing.
read_only_dir() {
  mounted_ro "$1" || return 1
  f=$(find "$1" -type f 2>/dev/null | head -n 1)
  [ -n "$f" ] && write_refused "$f"
}

echo "hostname=$(hostname)"
echo "pid=$$"
check "init is pid $init_pid" [ "$$" = "$init_pid" ]
check "only the firmware's own processes are visible" few_processes
check "only lo, and it is up" only_lo
check "/proc/sys is read-only" mounted_ro /proc/sys
check "/proc/sys cannot be written" write_refused /proc/sys/kernel/hostname
check "/sys is read-only" mounted_ro /sys
check "/sys cannot be written" write_refused /sys/class/net/lo/mtu
check "/proc/sysrq-trigger cannot be written" read_only_file /proc/sysrq-trigger
check "/proc/kcore is masked" masked_file /proc/kcore
check "/proc/kallsyms is masked" masked_file /proc/kallsyms
check "/proc/keys is masked" masked_file /proc/keys
check "/proc/kmsg is the firmware's own log" own_log /proc/kmsg
check "/proc/timer_list is masked" masked_file /proc/timer_list
check "/proc/sched_debug is masked" masked_file /proc/sched_debug
check "/proc/interrupts is masked" masked_file /proc/interrupts
check "/proc/latency_stats is masked" masked_file /proc/latency_stats
check "/proc/timer_stats is masked" masked_file /proc/timer_stats
check "/proc/acpi is masked" masked_dir /proc/acpi
check "/proc/asound is masked" masked_dir /proc/asound
check "/proc/scsi is masked" masked_dir /proc/scsi
check "/sys/firmware is masked" masked_dir /sys/firmware
check "/sys/devices/virtual/powercap is masked" masked_dir /sys/devices/virtual/powercap
check "/proc/bus is read-only" read_only_dir /proc/bus
check "/proc/fs is read-only" read_only_dir /proc/fs
check "/proc/irq is read-only" read_only_dir /proc/irq
check "/dev holds no block device" no_block_devices
check "/dev holds no mem, kmem, port, watchdog, rtc or disk node" no_dangerous_nodes
check "/dev/null works" sh -c 'echo x > /dev/null'
check "/dev/pts is mounted" mounted /dev/pts
check "the root is writable" sh -c 'echo "written by the firmware" > /etc/fw-written'
echo "failures=$fails"
exit "$fails"
