#!/bin/sh
# The shell floor of the benchmark: the work `fwrun --firmware IMAGE -- /bin/true`
# does, done with util-linux commands from a shell script.
#
#   tests/bench/floor.sh IMAGE [COMMAND...]      (as root; COMMAND defaults to /bin/true)
#
# In new mount, pid, uts, ipc and network namespaces it mounts a tmpfs
# workspace, the ext2 IMAGE read-only on a loop device, an overlay (upper
# layer in the tmpfs) over it and a /proc in the overlay, runs COMMAND
# chrooted into the overlay, and unmounts everything again.
#
# It does less than fwrun (no /sys, no curated /dev, no hostname, no lo up,
# no pivot_root, no state directory, no signal handling): it is a lower
# bound on "the same thing in shell", not an equivalent.
#
# Nothing is left behind: every mount lives in the private mount namespace,
# and `mount -o loop` sets the loop device to autoclear, so the device is
# freed by the unmount (or, if a step fails, when the namespace dies).
set -eu

if [ "${1:-}" != --inside ]; then
  img=${1:?usage: floor.sh IMAGE [COMMAND...]}
  shift
  img=$(readlink -f "$img")
  # --fork: the shell below is pid 1 of the new pid namespace, so the proc
  # it mounts shows that namespace. unshare makes the mount tree private.
  exec unshare --mount --pid --fork --uts --ipc --net -- sh "$0" --inside "$img" "$@"
fi

# From here on: inside the new namespaces.
img=$2
shift 2
[ $# -gt 0 ] || set -- /bin/true

# The workspace: a tmpfs over /tmp, seen only in this mount namespace, so
# there is no directory to create or remove on the host.
ws=/tmp
mount -t tmpfs -o mode=0700 fwfloor "$ws"
mkdir "$ws/lower" "$ws/upper" "$ws/work" "$ws/root"
mount -t ext2 -o loop,ro "$img" "$ws/lower"
mount -t overlay fwfloor \
  -o "lowerdir=$ws/lower,upperdir=$ws/upper,workdir=$ws/work" "$ws/root"
mount -t proc proc "$ws/root/proc"

status=0
chroot "$ws/root" "$@" || status=$?

# Tear down, last mounted first; unmounting the image frees its loop device.
umount "$ws/root/proc" "$ws/root" "$ws/lower" "$ws"
exit "$status"
