# smoke.sh: a guest script for run.sh proving the VM tier's ground works.
# Runs in the guest under busybox sh, as root, from the guest init.
#
#   tests/vm/smoke-payload.sh target/vm-smoke
#   tests/vm/run.sh --kernel-dir target/vm-kernel --payload target/vm-smoke \
#       --script tests/vm/smoke.sh
#
# Checks: AppArmor is enabled and its securityfs readable; apparmor_parser
# loads a profile from stdin in enforce mode; a process attached to it at
# exec is refused what it denies, and the kernel log has a DENIED record
# for the `audit deny` rule only;
# the profile unloads; loop devices, ext2/ext4, squashfs and overlayfs work;
# pivot_root works from the guest's root. Prints TAP-like "ok"/"not ok"
# lines; exits 1 if any check failed.

failures=0
ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    failures=$((failures + 1))
}
# check DESCRIPTION COMMAND...: run the command, report by its status.
check() {
    description=$1
    shift
    if "$@"; then ok "$description"; else not_ok "$description"; fi
}
not() { ! "$@"; }
# has_line TEXT LINE: one line of TEXT is exactly LINE.
has_line() { printf '%s\n' "$1" | grep -qxF "$2"; }
# mentions TEXT STRING: TEXT contains STRING.
mentions() { printf '%s\n' "$1" | grep -qF "$2"; }
indent() { printf '%s\n' "$1" | sed 's/^/    /'; }

profiles=/sys/kernel/security/apparmor/profiles
profile_name=fwrun-smoke
# An explicit `deny` rule is quiet: only `audit deny` (or a request no rule
# allows) leaves an apparmor="DENIED" record. The profile has one of each
# kind, and the checks below prove both behaviours.
profile='abi <abi/3.0>,
profile fwrun-smoke flags=(attach_disconnected,mediate_deleted) {
  file,
  audit deny /proc/sysrq-trigger w,
  deny /proc/version r,
}'
# parser OPTION: apparmor_parser OPTION with the profile on stdin.
parser() { printf '%s\n' "$profile" | apparmor_parser "$1"; }

# --- AppArmor ---------------------------------------------------------------

check "apparmor enabled (Y)" \
    grep -qx Y /sys/module/apparmor/parameters/enabled
check "$profiles readable" cat "$profiles"

check "apparmor_parser -r loads a profile from stdin" parser -r
check "the profile is listed in enforce mode" \
    grep -qx "$profile_name (enforce)" "$profiles"

# Attach the profile at the next exec through ATTR, from a subshell (so
# /proc/self is the subshell), then try the denied write and read.
# Prints the confined process's attr/current and the outcomes.
run_confined() {
    attr=$1
    (
        echo "exec $profile_name" >"$attr" || exit 90
        exec sh -c '
            cat /proc/self/attr/current
            echo confined >/tmp/confined-write-ok || echo "allowed write failed"
            if echo x >/proc/sysrq-trigger; then echo "sysrq write allowed"; else echo "sysrq write refused"; fi
            if cat /proc/version >/dev/null; then echo "version read allowed"; else echo "version read refused"; fi
        '
    ) 2>&1
}

for attr in /proc/self/attr/exec /proc/thread-self/attr/apparmor/exec; do
    rm -f /tmp/confined-write-ok
    out=$(run_confined "$attr")
    indent "$out"
    check "exec via $attr: the process runs under the profile" \
        has_line "$out" "$profile_name (enforce)"
    check "exec via $attr: the write to /proc/sysrq-trigger is refused" \
        has_line "$out" "sysrq write refused"
    check "exec via $attr: the read of /proc/version is refused" \
        has_line "$out" "version read refused"
    check "exec via $attr: other writes stay allowed" [ -f /tmp/confined-write-ok ]
done

# The kernel's audit thread prints records asynchronously: give it a moment.
denied=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    denied=$(dmesg | grep 'apparmor="DENIED"' | grep "profile=\"$profile_name\"")
    mentions "$denied" 'name="/proc/sysrq-trigger"' && break
    sleep 0.2
done
indent "$denied"
check "audit deny: the kernel log has the DENIED record" \
    mentions "$denied" 'name="/proc/sysrq-trigger"'
check "plain deny: no DENIED record" \
    not mentions "$denied" 'name="/proc/version"'

check "apparmor_parser -R unloads it" parser -R
check "the profile is gone from the list" \
    not grep -q "^$profile_name " "$profiles"

# --- block devices and file systems -------------------------------------------

mkdir -p /tmp/mnt/ext2 /tmp/mnt/ext4 /tmp/mnt/squashfs /tmp/mnt/merged \
    /tmp/overlay/upper /tmp/overlay/work

# The first free loop device: one whose sysfs entry has no backing file.
# (busybox `losetup -f` prints it on stderr, prefixed.)
free_loop() {
    for dir in /sys/block/loop*; do
        [ -e "$dir/loop/backing_file" ] || { echo "/dev/${dir##*/}"; return 0; }
    done
    return 1
}

# attach [-r] FILE: a loop device over FILE, read-only with -r. Prints it.
attach() {
    dev=$(free_loop) || return 1
    if [ "$1" = -r ]; then
        losetup -r "$dev" "$2"
    else
        losetup "$dev" "$1"
    fi && echo "$dev"
}

# ext2, made here with busybox mke2fs and mounted through the ext4 driver.
dd if=/dev/zero of=/tmp/smoke.ext2 bs=1024 count=2048 2>/dev/null
mke2fs -F /tmp/smoke.ext2 >/dev/null 2>&1
ext2_dev=$(attach /tmp/smoke.ext2)
check "losetup attaches a loop device ($ext2_dev)" [ -b "$ext2_dev" ]
check "ext2 mounts read-write" mount -t ext2 "$ext2_dev" /tmp/mnt/ext2
check "ext2 takes a write" sh -c 'echo data >/tmp/mnt/ext2/file && sync &&
    grep -q " /tmp/mnt/ext2 ext2 rw" /proc/mounts'

if [ -f /payload/smoke.ext4 ] && [ -f /payload/smoke.squashfs ]; then
    ext4_dev=$(attach -r /payload/smoke.ext4)
    check "ext4 (metadata_csum) mounts read-only" \
        mount -t ext4 -o ro "$ext4_dev" /tmp/mnt/ext4
    check "ext4 content reads back" grep -qx "hello from ext4" /tmp/mnt/ext4/hello

    squashfs_dev=$(attach -r /payload/smoke.squashfs)
    check "squashfs mounts" mount -t squashfs -o ro "$squashfs_dev" /tmp/mnt/squashfs
    check "squashfs content reads back" \
        grep -qx "hello from squashfs" /tmp/mnt/squashfs/hello

    check "overlay mounts (squashfs lower, tmpfs upper)" \
        mount -t overlay overlay \
        -o lowerdir=/tmp/mnt/squashfs,upperdir=/tmp/overlay/upper,workdir=/tmp/overlay/work \
        /tmp/mnt/merged
    check "overlay write lands in the upper layer" \
        sh -c 'echo changed >/tmp/mnt/merged/hello &&
            grep -qx changed /tmp/overlay/upper/hello &&
            grep -qx "hello from squashfs" /tmp/mnt/squashfs/hello'
else
    not_ok "payload has smoke.ext4 and smoke.squashfs (make it with smoke-payload.sh)"
fi

# pivot_root from the guest's root (a tmpfs, thanks to the init's
# switch_root), in a private mount namespace that dies with the subshell.
check "pivot_root works from the guest root" unshare -m sh -c '
    mount --make-rprivate / &&
    mkdir -p /tmp/newroot && mount -t tmpfs tmpfs /tmp/newroot &&
    mkdir /tmp/newroot/old && cd /tmp/newroot && pivot_root . old'

# Clean up: unmount in reverse order, detach every loop device.
for m in /tmp/mnt/merged /tmp/mnt/squashfs /tmp/mnt/ext4 /tmp/mnt/ext2; do
    if grep -q " $m " /proc/mounts; then umount "$m" || not_ok "umount $m"; fi
done
for dev in ${squashfs_dev:-} ${ext4_dev:-} ${ext2_dev:-}; do
    losetup -d "$dev" || not_ok "losetup -d $dev"
done
check "no loop device left attached" [ -z "$(losetup -a)" ]

echo "smoke: $failures check(s) failed"
[ "$failures" -eq 0 ]
