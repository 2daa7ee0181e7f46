#!/usr/bin/env bash
# run.sh: boot Debian's kernel in qemu with a busybox initramfs and run one
# test script in the guest, where AppArmor is real.
#
# usage: run.sh --kernel-dir DIR --payload DIR --script GUEST_SCRIPT
#               [--timeout SECS] [--log FILE] [--memory MB]
#               [--accel tcg|kvm|auto] [--module NAME]...
#
#   --kernel-dir   a directory made by kernel.sh (vmlinuz, lib/modules/<ver>)
#   --payload      copied to /payload in the guest (fwrun binary, images, ...)
#   --script       run in the guest with `sh` as /payload-script; its exit
#                  status is the verdict
#   --timeout      seconds before qemu is killed (default 180)
#   --log          also write the console output to FILE
#   --memory       guest RAM in MiB (default 1024); the initramfs, payload
#                  included, lives in it
#   --accel        tcg (default), kvm, or auto: try KVM and fall back to TCG
#                  if the guest shows no sign of life within 20 s
#   --module       load one more kernel module (and its dependencies)
#
# Exit status: 0 the guest printed "FWRUN-VM-RESULT: pass", 1 it printed
# "FWRUN-VM-RESULT: fail ...", 2 no verdict (timeout, crash, bad usage or a
# failed build of the initramfs).
#
# The console output goes to stdout as it comes. Everything temporary lives
# in one mktemp directory, removed on exit together with any qemu left running.
set -Eeuo pipefail
# Any failing command here is a harness failure: exit 2, never 1 (which
# means "the guest said fail"). -E lets functions inherit this trap.
trap 'exit 2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Modules the guest loads; their dependencies (jbd2, mbcache, crc16 for
# ext4) come from modules.dep. crc32c_generic is listed by hand, before
# ext4: ext4 and jbd2 get crc32c through the crypto API, which modules.dep
# does not record (only a "softdep pre: crypto-crc32c" in their modinfo).
# Without it, mounting ext4 with metadata_csum fails ("EXT4-fs (loop0):
# Cannot load crc32c driver.", ENOENT).
modules=(crc32c_generic loop overlay squashfs ext4)

kernel_dir='' payload='' script='' log='' timeout=180 memory=1024 accel=tcg

die() { echo "run.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }
note() { echo "run.sh: $*" >&2; }
# Seconds since an $EPOCHREALTIME value, to a tenth.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --kernel-dir) kernel_dir=${2:?}; shift 2 ;;
        --payload) payload=${2:?}; shift 2 ;;
        --script) script=${2:?}; shift 2 ;;
        --timeout) timeout=${2:?}; shift 2 ;;
        --log) log=${2:?}; shift 2 ;;
        --memory) memory=${2:?}; shift 2 ;;
        --accel) accel=${2:?}; shift 2 ;;
        --module) modules+=("${2:?}"); shift 2 ;;
        -h | --help) usage ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -n $kernel_dir && -n $payload && -n $script ]] || usage
[[ -s $kernel_dir/vmlinuz ]] || die "$kernel_dir/vmlinuz missing (run kernel.sh $kernel_dir)"
[[ -d $payload ]] || die "payload $payload is not a directory"
[[ -f $script ]] || die "script $script not found"
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || die "--timeout wants a positive number of seconds"
[[ $memory =~ ^[0-9]+$ ]] || die "--memory wants a number of MiB"
case $accel in tcg | kvm | auto) ;; *) die "--accel wants tcg, kvm or auto" ;; esac

if [[ -f $kernel_dir/version ]]; then
    kver=$(<"$kernel_dir/version")
else
    kver=$(ls "$kernel_dir/lib/modules")   # a cache not made by kernel.sh
fi
moddir=$kernel_dir/lib/modules/$kver
[[ -f $moddir/modules.dep ]] || die "$moddir/modules.dep missing (run kernel.sh $kernel_dir)"

# The guest has no libc for busybox: it must be the static build
# (busybox-static installs it as /bin/busybox).
busybox=/bin/busybox
[[ -x $busybox ]] || busybox=$(command -v busybox) || die "busybox not found (install busybox-static)"
ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked (install busybox-static)"
parser=$(command -v apparmor_parser || echo /sbin/apparmor_parser)
[[ -x $parser ]] || die "apparmor_parser not found (install apparmor)"
[[ -d /etc/apparmor.d/abi ]] || die "/etc/apparmor.d/abi missing (install apparmor)"

# Everything temporary goes under $tmp; the EXIT trap removes it and stops
# whatever this script started (qemu, the console follower).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fwrun-vm.XXXXXX")
qemu_pid='' follow_pid=''
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local pid
    for pid in $qemu_pid $follow_pid; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# --- the initramfs ----------------------------------------------------------

root=$tmp/root
build_started=$EPOCHREALTIME
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,payload,lib/fwrun-vm/modules}

# busybox and the shell the guest init starts with; the init creates the
# other applet links itself (busybox --install -s, much faster than
# hundreds of ln calls here).
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# The kernel opens /dev/console for init before anything is mounted.
mknod -m 600 "$root/dev/console" c 5 1

# apparmor_parser, the shared libraries it links (ldd prints their paths,
# the dynamic loader included) and the abi files profiles refer to
# (`abi <abi/3.0>,` reads /etc/apparmor.d/abi/3.0).
cp "$parser" "$root/sbin/apparmor_parser"
# The same for every dynamically linked program at the payload's top level
# (fwrun itself is linked statically: ldd names nothing for it).
for prog in "$parser" "$payload"/*; do
    [[ -f $prog && -x $prog ]] || continue
    { ldd "$prog" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        [[ -e $root/$lib ]] && continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done
done
mkdir -p "$root/etc/apparmor.d"
cp -a /etc/apparmor.d/abi "$root/etc/apparmor.d/abi"
# Debian's parser.conf pins the policy feature set to
# /usr/share/apparmor-features/features; the parser fails if the file it
# names is missing. Take both, so the guest compiles policy as Debian does.
if [[ -f /etc/apparmor/parser.conf ]]; then
    mkdir -p "$root/etc/apparmor"
    cp /etc/apparmor/parser.conf "$root/etc/apparmor/"
fi
if [[ -d /usr/share/apparmor-features ]]; then
    mkdir -p "$root/usr/share"
    cp -a /usr/share/apparmor-features "$root/usr/share/"
fi

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$root/etc/group"

# Kernel modules. modules.dep maps a module's path to the paths it needs:
#   kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko ...
# Walk it depth first so each module comes after its dependencies.
declare -A deps_of path_of added
while IFS= read -r line; do
    path=${line%%:*}
    deps_of[$path]=${line#*:}
    name=${path##*/}
    name=${name%%.ko*}
    path_of[${name//-/_}]=$path    # module names use _ where files may use -
done <"$moddir/modules.dep"

load_order=()
add_module_path() {
    local path=$1 dep
    [[ -n ${added[$path]:-} ]] && return
    added[$path]=1
    for dep in ${deps_of[$path]}; do
        add_module_path "$dep"
    done
    load_order+=("$path")
}
for name in "${modules[@]}"; do
    path=${path_of[${name//-/_}]:-}
    [[ -n $path ]] || die "module $name not in $moddir/modules.dep"
    add_module_path "$path"
done

# Copy them in order as NN-name.ko, decompressed: busybox insmod may not
# read compressed modules. (Debian 12's kernel ships plain .ko files.)
n=0
for path in "${load_order[@]}"; do
    name=${path##*/}
    name=${name%%.ko*}
    out=$root/lib/fwrun-vm/modules/$(printf '%02d' "$n")-$name.ko
    case $path in
        *.ko) cp "$moddir/$path" "$out" ;;
        *.ko.xz) xz -dc "$moddir/$path" >"$out" ;;
        *.ko.gz) gzip -dc "$moddir/$path" >"$out" ;;
        *.ko.zst) zstd -qdc "$moddir/$path" >"$out" ;;
        *) die "unknown module format: $path" ;;
    esac
    n=$((n + 1))
done

# The guest's init, the test script and the payload.
cp "$here/guest-init.sh" "$root/init"
chmod 755 "$root/init"
cp "$script" "$root/payload-script"
cp -a "$payload/." "$root/payload/"

# newc is the cpio format the kernel unpacks; -R 0:0 makes everything
# root's in the guest. gzip -1: the archive is read once, from a local file.
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) |
    gzip -1 >"$tmp/initrd.gz"
note "initramfs: $(du -h "$tmp/initrd.gz" | cut -f1) built in $(since "$build_started") s" \
    "(modules: ${load_order[*]##*/})"
rm -rf "$root"

# --- the VM -------------------------------------------------------------------

console=${log:-$tmp/console.log}
# Prefer the decompressed kernel kernel.sh leaves: qemu starts it through its
# PVH entry point, skipping the BIOS and the kernel's decompressor (~4 s
# under TCG). The bzImage works too, only slower.
kernel=$kernel_dir/vmlinux
[[ -s $kernel ]] || kernel=$kernel_dir/vmlinuz
cmdline="console=ttyS0 panic=-1 quiet loglevel=4 apparmor=1 security=apparmor"

# Start qemu in the background with the serial console written to $console;
# a follower copies that file to stdout as it grows.
start_qemu() {
    local accel=$1
    : >"$console"
    qemu-system-x86_64 \
        -accel "$accel" -m "$memory" -smp 1 \
        -nodefaults -display none -no-reboot \
        -serial "file:$console" \
        -kernel "$kernel" -initrd "$tmp/initrd.gz" -append "$cmdline" \
        </dev/null >"$tmp/qemu.out" 2>&1 &
    qemu_pid=$!
    tail -n +1 -s 0.2 -f --pid="$qemu_pid" "$console" &
    follow_pid=$!
}

# Wait until qemu exits or the deadline passes; returns 1 on timeout.
# With a probe deadline, also give up early (returning 3) if the guest has
# not printed its first harness line by then: that is the KVM hang.
wait_qemu() {
    local deadline=$1 probe_deadline=${2:-0}
    while kill -0 "$qemu_pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then return 1; fi
        if ((probe_deadline > 0 && SECONDS >= probe_deadline)) &&
            ! grep -q 'FWRUN-VM:' "$console"; then
            return 3
        fi
        sleep 0.2
    done
    return 0
}

# Stop qemu if it still runs: SIGTERM, then SIGKILL after 5 s.
stop_qemu() {
    local i
    if kill "$qemu_pid" 2>/dev/null; then
        for ((i = 0; i < 25; i++)); do
            kill -0 "$qemu_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$qemu_pid" 2>/dev/null || true
    fi
    wait "$qemu_pid" 2>/dev/null || true
    wait "$follow_pid" 2>/dev/null || true
    qemu_pid='' follow_pid=''
}

boot_started=$EPOCHREALTIME
deadline=$((SECONDS + timeout))
verdict=0
case $accel in
    tcg | kvm)
        start_qemu "$accel"
        wait_qemu "$deadline" || verdict=$?
        ;;
    auto)
        start_qemu kvm
        wait_qemu "$deadline" $((SECONDS + 20)) || verdict=$?
        if ((verdict == 3)); then
            stop_qemu
            note "no sign of life from the guest under KVM in 20 s; retrying with TCG"
            verdict=0
            start_qemu tcg
            wait_qemu "$deadline" || verdict=$?
        fi
        ;;
esac
timed_out=$((verdict == 1))
stop_qemu
if [[ -s $tmp/qemu.out ]]; then
    sed 's/^/qemu: /' "$tmp/qemu.out" >&2
fi

# --- the verdict --------------------------------------------------------------

# The serial console ends lines with \r\n. The guest init prints its marker
# after the test script has finished: the last marker line is the verdict.
marker=$(tr -d '\r' <"$console" | grep -a '^FWRUN-VM-RESULT: ' | tail -n 1 || true)
elapsed=$(since "$boot_started")
case $marker in
    'FWRUN-VM-RESULT: pass')
        note "pass (VM ran ${elapsed} s)"
        exit 0
        ;;
    'FWRUN-VM-RESULT: fail'*)
        note "${marker#FWRUN-VM-RESULT: } (VM ran ${elapsed} s)"
        exit 1
        ;;
esac
if ((timed_out)); then
    note "timeout: no verdict after $timeout s, qemu killed"
else
    note "qemu exited after ${elapsed} s without a verdict"
fi
exit 2
