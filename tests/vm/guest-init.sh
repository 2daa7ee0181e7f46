#!/bin/sh
# guest-init.sh: the VM's init, run by busybox sh inside the guest.
#
# run.sh copies this file into the initramfs as /init. It runs twice:
#
#   stage 1 (no argument, PID 1 on the initramfs root):
#     pivot_root(2) refuses to leave the initramfs root (EINVAL), and fwrun
#     needs pivot_root. So copy the whole initramfs into a tmpfs and
#     switch_root there; switch_root frees the initramfs and runs stage 2.
#
#   stage 2 ("stage2", PID 1 on the tmpfs root):
#     mount the usual pseudo file systems, load the kernel modules run.sh
#     packed, check that AppArmor is enabled, run the test script
#     (/payload-script) and print the verdict marker that run.sh waits for:
#       FWRUN-VM-RESULT: pass
#       FWRUN-VM-RESULT: fail <exit status>
#       FWRUN-VM-RESULT: fail setup: <what failed>
#     Then power off.
#
# Lines starting with "FWRUN-VM:" are the harness talking, not the test.

export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root

say() { echo "FWRUN-VM: $*"; }

# Power the VM off. -f: no init to ask, call reboot(2) directly. If that
# ever failed, PID 1 exiting panics the kernel, and panic=-1 together with
# qemu's -no-reboot ends the VM anyway.
power_off() {
    sync
    poweroff -f
    exit 1
}

# A step the harness itself needs failed: report it as a failure with the
# reason, so run.sh does not wait for its timeout.
setup_failed() {
    echo "FWRUN-VM-RESULT: fail setup: $*"
    power_off
}

# Run a command; if it fails, end the VM with a setup failure.
must() {
    "$@" || setup_failed "$*"
}

stage1() {
    # Only /bin/busybox and /bin/sh exist yet: link every applet at the
    # place busybox lists for it (/bin/mount, /sbin/insmod, ...).
    /bin/busybox --install -s || { echo "FWRUN-VM-RESULT: fail setup: busybox --install"; exit 1; }
    must mount -t proc proc /proc
    must mount -t sysfs sysfs /sys
    must mount -t devtmpfs devtmpfs /dev

    say "stage 1: copying the initramfs into a tmpfs"
    must mkdir -p /newroot
    must mount -t tmpfs -o mode=0755 tmpfs /newroot
    for entry in /* /.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue   # unmatched glob
        case $entry in
            /proc | /sys | /dev | /newroot) continue ;;
        esac
        must cp -a "$entry" /newroot/
    done
    must mkdir -p /newroot/proc /newroot/sys /newroot/dev

    # busybox switch_root does not carry mounts over: drop them here, stage 2
    # mounts fresh ones. stdin/stdout/stderr stay open on the console.
    umount /proc /sys /dev
    # shellcheck disable=SC2093  # exec returns only on failure
    exec switch_root /newroot /init stage2
    # exec only returns on failure; nothing is mounted to report through.
    echo "FWRUN-VM-RESULT: fail setup: switch_root"
    poweroff -f
}

mount_pseudo_filesystems() {
    must mount -t proc proc /proc
    must mount -t sysfs sysfs /sys
    must mount -t devtmpfs devtmpfs /dev
    must mkdir -p /dev/pts /dev/shm
    must mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
    must mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    must mount -t securityfs securityfs /sys/kernel/security
    must mount -t cgroup2 cgroup2 /sys/fs/cgroup
    must mkdir -p /run /tmp
    must mount -t tmpfs -o mode=0755 tmpfs /run
    must mount -t tmpfs -o mode=1777 tmpfs /tmp
    # Mounts made without systemd are private already; say so explicitly so
    # the guest does not depend on that default.
    must mount --make-rprivate /
}

# run.sh packs the modules (already decompressed) as
# /lib/fwrun-vm/modules/NN-name.ko, NN giving the dependency order.
load_modules() {
    for module in /lib/fwrun-vm/modules/*.ko; do
        [ -e "$module" ] || continue
        must insmod "$module"
    done
    say "modules loaded: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
}

check_apparmor() {
    enabled=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)
    say "apparmor enabled: ${enabled:-absent}"
    [ "$enabled" = Y ] || setup_failed "AppArmor is not enabled in the guest kernel"
    [ -r /sys/kernel/security/apparmor/profiles ] ||
        setup_failed "/sys/kernel/security/apparmor/profiles is not readable"
}

stage2() {
    mount_pseudo_filesystems
    hostname fwrun-vm
    # With no auditd, AppArmor's records reach the kernel log through
    # printk_ratelimit() (10 per 5 s by default) and the rest are dropped.
    # Tests count denials: lift the limit.
    echo 0 >/proc/sys/kernel/printk_ratelimit
    load_modules
    check_apparmor

    say "running the test script"
    cd /
    sh /payload-script </dev/null 2>&1
    status=$?
    cd /
    if [ "$status" -eq 0 ]; then
        echo "FWRUN-VM-RESULT: pass"
    else
        echo "FWRUN-VM-RESULT: fail $status"
    fi
    power_off
}

case ${1:-} in
    stage2) stage2 ;;
    *) stage1 ;;
esac
