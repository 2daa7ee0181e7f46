#!/bin/sh
# What a curious firmware tries once it is root: each a way past fwrun's
# own judgement of paths, which the kernel refuses when the firmware is
# root only inside a user namespace of its own. Every probe changes nothing
# if it is not refused: it writes back the value the host has, chmods to
# the mode a file has, mounts then unmounts in its own mount namespace.
# Run with --allow-mknod and --bind HOSTDIR:/data:ro. Environment (from
# the test): CAD (the host's kernel/ctrl-alt-del), THP (the host's
# transparent_hugepage/enabled, its word), NULLMODE (the mode of the host's
# /dev/null), DATAMODE (the mode of HOSTDIR).
fails=0
say() { if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi; }
refused() { d=$1; shift; if "$@" >/dev/null 2>&1; then say no "$d"; else say ok "$d"; fi; }
holds() { d=$1; shift; if "$@" >/dev/null 2>&1; then say ok "$d"; else say no "$d"; fi; }
# denied WHAT CMD...: refused for want of the right (EPERM, EACCES), not
# for another reason.
denied() {
  d=$1; shift
  if out=$("$@" 2>&1); then say no "$d"; return; fi
  case "$out" in
    *"not permitted"*|*"ermission denied"*) say ok "$d" ;;
    *) say no "$d: failed for another reason: $out" ;;
  esac
}
mkdir -p /mnt/cg /mnt/c2 /mnt/p /mnt/q /mnt/r /mnt/t /mnt/f
touch /tmp/n

# cgroups: a v1 hierarchy's root, whose release_agent the kernel runs as
# the host's root, and a cgroup2 tree that shows the host's processes.
# Whatever the user namespace, the firmware's cgroup namespace is rooted
# at the run's own cgroup: a hierarchy it mounts (an existing v1 one may be
# mounted from a user namespace) shows that cgroup, never a root.
mount -t cgroup -o pids cgroup /mnt/cg 2>/dev/null
holds "no v1 release_agent in reach" sh -c '! ls /mnt/cg/release_agent'
umount /mnt/cg 2>/dev/null
own_tree() {
  # Refused (by an AppArmor profile): no tree in reach at all.
  mount -t cgroup2 none /mnt/c2 || return 0
  in_tree=$(cat $(find /mnt/c2 -name cgroup.procs) | wc -l)
  umount /mnt/c2
  # The tree lists no process this pid namespace does not have.
  [ "$in_tree" -le "$(ls -d /proc/[0-9]* | wc -l)" ]
}
holds "its cgroup2 tree holds its own processes only" own_tree

# Read-only copies made writable: fwrun's bind of the host's /dev/null,
# and a --bind of a host directory given read-only.
refused "a bind of /dev/null made writable" sh -c 'mount --bind /dev/null /tmp/n && /test/remount /tmp/n'
umount /tmp/n 2>/dev/null
refused "/dev/null made writable, then chmod" sh -c "/test/remount /dev/null; chmod $NULLMODE /dev/null"
refused "the :ro bind made writable, then chmod" sh -c "/test/remount /data; chmod $DATAMODE /data"

# Masks removed in copies of fwrun's /proc.
refused "/proc/sys uncovered in an rbind of /proc" sh -c "mount --rbind /proc /mnt/p && umount /mnt/p/sys && echo '$CAD' > /mnt/p/sys/kernel/ctrl-alt-del"
umount -l /mnt/p 2>/dev/null
refused "/proc/sys uncovered in a proc mounted elsewhere" sh -c "mount -t proc proc /mnt/q && umount /mnt/q/sys; echo '$CAD' > /mnt/q/sys/kernel/ctrl-alt-del"
umount -l /mnt/q 2>/dev/null
refused "/proc/sys uncovered in a child mount namespace" unshare -m sh -c "umount /proc/sys && echo '$CAD' > /proc/sys/kernel/ctrl-alt-del"

# Magic links: fwrun's mounts reached through /proc/PID/root.
refused "/proc/sys made writable through /proc/1/root" sh -c "/test/remount /proc/1/root/proc/sys && echo '$CAD' > /proc/sys/kernel/ctrl-alt-del"
refused "/proc/sys made writable through /proc/self/root" sh -c "/test/remount /proc/self/root/proc/sys && echo '$CAD' > /proc/sys/kernel/ctrl-alt-del"
refused "/sys made writable through /proc/1/root" sh -c "/test/remount /proc/1/root/sys && echo '$THP' > /sys/kernel/mm/transparent_hugepage/enabled"

# Device nodes: one made on its own tmpfs, and nodev cleared by a plain
# remount of a bind of its root.
refused "a char node made and opened on its own tmpfs" sh -c 'mount -t tmpfs t /mnt/t && mknod /mnt/t/null c 1 3 && head -c 1 /mnt/t/null'
umount /mnt/t 2>/dev/null
refused "nodev cleared by a plain remount of a bind of /" sh -c 'mount --bind / /mnt/r && /test/remount /mnt/r dev'
umount /mnt/r 2>/dev/null

# Global knobs: each checked against the host's namespace.
refused "/proc/mtrr opened for writing" sh -c ': >> /proc/mtrr'
denied "FITHAW on the host's devtmpfs" fsfreeze --unfreeze /dev/null
refused "the real-time I/O class" ionice -c 1 -n 7 true
refused "the host kernel's fusectl mounted" mount -t fusectl fusectl /mnt/f
umount /mnt/f 2>/dev/null

echo "failures=$fails"
exit "$fails"
