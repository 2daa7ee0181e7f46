# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_fwrun_global_optspecs
    string join \n firmware= cleanup rw-dir= name= hostname= bind= env= net= veth-name= net-move= p/publish= stop-signal= stop-timeout= timeout= on-reboot= console= ready-when= ready-timeout= ready-fd= memory= memory-swap= pids= cpus= io-weight= cgroup-parent= as-pid2 apparmor= profile-template= deny= allow-mknod cap-add= cap-drop= seccomp= userns= modules= cmdline= kmsg= print-profile apparmor-parser= follow-denials changes report= v/verbose q/quiet h/help V/version
end

function __fish_fwrun_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_fwrun_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_fwrun_using_subcommand
    set -l cmd (__fish_fwrun_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c fwrun -n "__fish_fwrun_needs_command" -l firmware -d 'The firmware: an ext2/ext3/ext4 image, a squashfs image, or a directory holding a root file system. Its kind is read from its content, not its name. It is never written to' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l rw-dir -d 'Keep the firmware\'s changes in DIR (DIR/upper and DIR/work) instead of a tmpfs that is discarded at the end: the next run with the same DIR sees them' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l name -d 'The run\'s name: letters, digits, \'.\', \'_\', \'-\', at most 32 characters. It names the state directory, the overlay and the AppArmor profile (fwrun-NAME-ID, with an ID fresh for every run). [default: generated, short and unique]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l hostname -d 'The firmware\'s hostname. [default: the run\'s name]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l bind -d 'Bind a host path into the firmware at DST (an absolute path inside it), read-only with \':ro\' (every mount under SRC too). Device nodes under SRC open nothing unless SRC is itself a device node. Repeatable' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l env -d 'Set a variable in the init\'s environment. Repeatable. The init otherwise gets a small clean environment (PATH, HOME, TERM, container=fwrun), not the caller\'s' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l net -d 'The firmware\'s network. \'none\': a network namespace of its own with only the loopback interface, up. \'host\': the host\'s own network, whose settings it may then not change (no net_admin; the AppArmor profile refuses writes under /proc/sys/net and /sys/class/net). \'veth[:HOSTADDR/PREFIX]\': a namespace of its own with one end of a veth pair, eth0, left down and unaddressed for the firmware to configure as on its device; the host\'s end, fw-NAME, is brought up, with the IPv4 address HOSTADDR/PREFIX if given (refused if it shares a network with a route of the host). \'bridge:BR\': the same, with the host\'s end in the existing bridge BR, which several firmwares and the host may share' -r -f -a "none\t'A network namespace of its own with only lo'
host\t'The host\'s network'
veth\t'A veth pair to the host'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l veth-name -d 'The firmware\'s end of the veth under --net veth or bridge. [default: eth0]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l net-move -d 'Move the host interface IFACE (a tap, a USB network adapter, a CAN interface) into the firmware\'s network, named NEWNAME there if given. At the end it comes back to the host under its own name, with its flags and MTU (its addresses are not kept). Repeatable; not with --net host' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -s p -l publish -d 'Reach the firmware\'s port PORT from the host\'s HOSTADDR:HOSTPORT (HOSTADDR 127.0.0.1 unless given; [::1] for IPv6), with every --net mode, none included: fwrun listens on the host and carries each connection (each client\'s datagrams with /udp) to the firmware\'s 127.0.0.1:PORT inside its network, or to the address the firmware listens on for PORT. Nothing of it outlives the run. A host port another program holds is refused before anything starts. Repeatable' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l stop-signal -d 'The signal that asks the init to stop (on Ctrl-C, SIGTERM, SIGHUP or --timeout): a name (TERM, SIGUSR2, RTMIN+4), a number, or \'auto\': the one the init expects, read from the firmware (busybox init powers off on USR2, sysvinit shuts down on INT, its inittab\'s ctrlaltdel entry, systemd powers off on RTMIN+4; any other program gets TERM). -v and the report say which was chosen and why' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l stop-timeout -d 'Seconds to wait after the stop signal before every process of the firmware is killed. fwrun says which happened: stopped (and how fast) or killed' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l timeout -d 'Stop the firmware after this long (e.g. 90s, 5m, 1.5h; a bare number is seconds) and exit with 124' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l on-reboot -d 'What a reboot from inside the firmware does: \'exit\' ends the run (exit code 129), \'restart\' boots the firmware again with the same writable layer' -r -f -a "exit\t'End the run, with exit code 129'
restart\t'Boot the firmware again, keeping its writable layer'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l console -d 'The firmware\'s console: \'pty\' gives the init a new pseudo-terminal as its controlling terminal and /dev/console, relayed to fwrun\'s stdin and stdout (the terminal in raw mode; Ctrl-] three times within a second stops the run); \'inherit\' gives it fwrun\'s stdin, stdout and stderr. \'auto\': pty for an init fwrun recognises (busybox init, sysvinit, systemd) and whenever stdin and stdout are both a terminal, inherit for any other program (pipes and binary output pass unchanged). Without a terminal on stdout, the firmware gets TERM=dumb unless --env sets TERM' -r -f -a "auto\t'pty for a recognised init or on a terminal, inherit otherwise'
pty\t'A new pseudo-terminal, relayed to fwrun\'s stdin and stdout'
inherit\t'fwrun\'s own stdin, stdout and stderr'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l ready-when -d 'When the firmware counts as ready (repeatable: all must hold, each once): \'console:REGEX\' (a line of its console matches), \'tcp:[ADDR:]PORT\' (a connection to ADDR, 127.0.0.1 if not given, made inside its network, is accepted), \'file:PATH\' (PATH exists inside it) or \'exec:CMD\' (the shell command CMD, run inside it as by \'fwrun enter\', exits 0; polled). Then the run\'s state becomes ready (fwrun wait, fwrun list) and fwrun says "firmware ready after N s". To read the console in inherit mode, fwrun passes the init\'s output on through pipes. [default: ready once the init runs]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l ready-timeout -d 'Stop the firmware and exit with 124 if it is not ready after this long (e.g. 30s, 2m)' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l ready-fd -d 'Once the firmware is ready, write a line ("ready") to this open file descriptor, and close it' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l memory -d 'Limit the firmware\'s memory (memory.max of its cgroup): bytes, or with K, M or G (e.g. 64M). Swap is not used unless --memory-swap allows it. A firmware past the limit is OOM-killed (exit 137). Needs the cgroup v2 unified hierarchy, as every limit does' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l memory-swap -d 'Let the firmware use this much swap (memory.swap.max). [default: 0 with --memory]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l pids -d 'The most processes and threads the firmware may have at once (pids.max): a fork bomb stops there. [default: 4096 on a cgroup v2 host; none on v1]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l cpus -d 'The CPU time the firmware gets, in CPUs (cpu.max; e.g. 0.5 is half of one CPU)' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l io-weight -d 'The firmware\'s share of block I/O against its siblings, 1 to 10000 (io.weight; 100 is the kernel\'s default)' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l cgroup-parent -d 'Make the run\'s cgroup (fwrun-NAME) under this cgroup, a path below /sys/fs/cgroup, which must hold no process of its own. [default: next to fwrun\'s own cgroup]' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l apparmor -d 'Confine the firmware with a per-run AppArmor profile: \'auto\' uses it when the kernel has AppArmor and warns once when it does not; \'require\' refuses to run without it (exit 125); \'off\' never uses it' -r -f -a "auto\t'Use AppArmor when the kernel has it; warn once when it does not'
require\t'Refuse to run without AppArmor'
off\t'Never use AppArmor, and say nothing about it'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l profile-template -d 'Render the profile from this template instead of the built-in one (tera syntax; see profiles/fwrun.profile.tera)' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l deny -d 'Deny the firmware every access to PATH (an AppArmor glob, as the firmware sees it), on top of the built-in list. Repeatable' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l cap-add -d 'Give the firmware a capability it does not get by default (e.g. SYS_TIME, which lets it set the host\'s clock). Repeatable. By default it keeps every capability but sys_module, sys_time, sys_rawio, syslog, wake_alarm, sys_pacct, mac_admin, mac_override, audit_control, bpf, perfmon, block_suspend, mknod (see --allow-mknod) and, under --net host, net_admin' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l cap-drop -d 'Take a capability away from the firmware (e.g. NET_RAW). Repeatable' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l seccomp -d 'The seccomp filter: \'on\' refuses the calls that reach the host (modules, the clock, swap, the kernel log\'s destructive actions, …) and hands the firmware\'s mounts to fwrun, which keeps /proc, /sys and /dev constrained. \'off\' is for debugging only: without it, a firmware\'s own mounts undo those constraints' -r -f -a "on\t'On (the default)'
off\t'Off (debugging only)'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l userns -d 'The firmware\'s user namespace: \'on\' makes it root only inside a user namespace of its own (ids mapped to themselves, so its files need no shifting), where the kernel keeps it off the host: fwrun\'s mounts are locked, and the clock, modules, device nodes, raw I/O and the host\'s terminal need privileges it does not have. \'off\' is for debugging only: the firmware is then root in the host\'s user namespace, and only fwrun\'s own checks stand in its way' -r -f -a "on\t'On (the default)'
off\t'Off (debugging only)'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l modules -d 'What a module load (init_module, finit_module) gets: \'refuse\' (the default) answers EPERM; \'fake\' answers that the module was loaded, and loads nothing, for an rcS that stops when insmod fails. Either way the host\'s kernel is untouched, and the report counts the calls' -r -f -a "refuse\t'Refuse with EPERM (the default)'
fake\t'Answer "loaded", load nothing'"
complete -c fwrun -n "__fish_fwrun_needs_command" -l cmdline -d 'The firmware\'s kernel command line, as its /proc/cmdline shows it (its init reads console=, root=, boot slots and debug flags there). [default: the host\'s, without its console= entries]' -r
complete -c fwrun -n "__fish_fwrun_needs_command" -l kmsg -d 'Write the firmware\'s kernel log (what it writes to /dev/kmsg, one \'<PRI>message\' record a line) to FILE instead of fwrun\'s stdout. The host\'s kernel log is never read or written for it' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l apparmor-parser -d 'The apparmor_parser to load the profile with. [default: found in /usr/sbin or /sbin]' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l report -d 'Write a JSON report of the run to FILE: name, firmware, init, times, phases, how it ended, exit code, changes, AppArmor denials. Written even when the run fails' -r -F
complete -c fwrun -n "__fish_fwrun_needs_command" -l cleanup -d 'Only sweep: remove what dead runs left (state directories, AppArmor profiles), print what was removed, and exit. Live runs are never touched'
complete -c fwrun -n "__fish_fwrun_needs_command" -l as-pid2 -d 'Run INIT as pid 2 under a minimal pid 1 of fwrun\'s that reaps orphans and forwards signals: for a test program rather than a real init. The exit status is the program\'s'
complete -c fwrun -n "__fish_fwrun_needs_command" -l allow-mknod -d 'Keep CAP_MKNOD and the profile\'s permission for device nodes. Off by default. In the firmware\'s user namespace the kernel makes no device node all the same: this matters with --userns off only, and there a node made on fwrun\'s mounts does not open (they are nodev); one made on a file system the firmware mounts itself would'
complete -c fwrun -n "__fish_fwrun_needs_command" -l print-profile -d 'Print the AppArmor profile this run would load, and exit without running anything. Its name\'s ID is fresh every time, as a run\'s is'
complete -c fwrun -n "__fish_fwrun_needs_command" -l follow-denials -d 'Print AppArmor denials as they happen, not only in the summary at the end'
complete -c fwrun -n "__fish_fwrun_needs_command" -l changes -d 'At the end, list what the firmware added (A), modified (M), deleted (D) and replaced (R, a directory made anew) in its root, read from the overlay\'s upper layer'
complete -c fwrun -n "__fish_fwrun_needs_command" -s v -l verbose -d 'Say more: each phase and how long it took'
complete -c fwrun -n "__fish_fwrun_needs_command" -s q -l quiet -d 'Say nothing but errors'
complete -c fwrun -n "__fish_fwrun_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fwrun -n "__fish_fwrun_needs_command" -s V -l version -d 'Print version'
complete -c fwrun -n "__fish_fwrun_needs_command" -a "enter" -d 'Run a command inside a running firmware'
complete -c fwrun -n "__fish_fwrun_needs_command" -a "list" -d 'List the live runs: name, firmware, init pid, state, uptime, network'
complete -c fwrun -n "__fish_fwrun_needs_command" -a "stop" -d 'Stop a run, as SIGTERM to its fwrun would, and wait until it has ended and cleaned up'
complete -c fwrun -n "__fish_fwrun_needs_command" -a "wait" -d 'Wait until a run is ready: exit 0 once it is, 1 if it ends first, 124 when the timeout passes'
complete -c fwrun -n "__fish_fwrun_using_subcommand enter" -l env -d 'Set a variable in the command\'s environment, on top of the init\'s. Repeatable' -r
complete -c fwrun -n "__fish_fwrun_using_subcommand enter" -s t -l tty -d 'Give the command a pseudo-terminal even when stdin is not a terminal'
complete -c fwrun -n "__fish_fwrun_using_subcommand enter" -s T -l no-tty -d 'Give the command fwrun\'s own stdin, stdout and stderr even on a terminal'
complete -c fwrun -n "__fish_fwrun_using_subcommand enter" -s q -l quiet -d 'Say nothing but errors (not the calls the command was refused)'
complete -c fwrun -n "__fish_fwrun_using_subcommand enter" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fwrun -n "__fish_fwrun_using_subcommand list" -l json -d 'Print a JSON array (schemas/list.schema.json) instead of a table'
complete -c fwrun -n "__fish_fwrun_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fwrun -n "__fish_fwrun_using_subcommand stop" -l timeout -d 'Kill the firmware if it has not stopped after this long (e.g. 5s). [default: the run\'s --stop-timeout]' -r
complete -c fwrun -n "__fish_fwrun_using_subcommand stop" -l kill -d 'Kill the firmware at once (as a second Ctrl-C does) rather than wait for its init to stop'
complete -c fwrun -n "__fish_fwrun_using_subcommand stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fwrun -n "__fish_fwrun_using_subcommand wait" -l timeout -d 'Give up after this long (e.g. 30s, 2m) and exit with 124. [default: wait as long as the run boots]' -r
complete -c fwrun -n "__fish_fwrun_using_subcommand wait" -s h -l help -d 'Print help (see more with \'--help\')'
