//! What fwrun tells about a run. Here, --report FILE: what happened in the
//! run, as JSON, for CI jobs and scripts; its fields are documented in the
//! man page and pinned by schemas/report.schema.json. `changes.rs`: what the
//! firmware changed in its root (--changes, and the report's list);
//! `status.rs`: the status lines on stderr, and the phases' times.

pub mod changes;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::error::fail;
use crate::report::changes::Change;

/// The report's format version; bumped when a field changes meaning.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub name: String,
    pub firmware: Firmware,
    pub init: Vec<String>,
    pub start: String,
    pub end: String,
    /// Each phase of the run and how long it took, in order.
    pub phases: Vec<Phase>,
    pub ending: Ending,
    /// How fwrun stopped the firmware; null when it did not (the firmware
    /// ended by itself, or fwrun failed).
    pub stop: Option<Stop>,
    pub exit_code: i32,
    pub boots: u32,
    /// How long the (last) boot took to become ready (--ready-when), in
    /// ms; null if it never was.
    pub ready_ms: Option<u64>,
    /// The firmware's changes to its root (null unless --changes or
    /// --report was given and the overlay was mounted).
    pub changes: Option<Vec<Change>>,
    pub apparmor: AppArmor,
    pub confinement: Confinement,
    pub network: Network,
    /// The run's cgroup: its limits and what it counted.
    pub cgroup: CgroupInfo,
    /// What fwrun read from the init, and what it chose from it.
    pub detected: Detected,
    /// The firmware's own kernel: its command line, its kernel log, its
    /// module loads.
    pub kernel: Kernel,
}

/// What the firmware saw of a kernel of its own.
#[derive(Debug, Default, Serialize)]
pub struct Kernel {
    /// Its /proc/cmdline.
    pub cmdline: String,
    /// --kmsg FILE; null: its kernel log went to fwrun's stdout.
    pub kmsg_file: Option<String>,
    /// How many records it wrote to its /dev/kmsg.
    pub kmsg_records: u64,
    /// refuse or fake (--modules).
    pub modules: String,
    /// How many module loads were answered "loaded" under --modules fake.
    pub modules_faked: u64,
}

/// What fwrun read from the init before starting it (null where it never
/// got that far), and the defaults it chose from it.
#[derive(Debug, Default, Serialize)]
pub struct Detected {
    /// The init's program inside the firmware, symlinks resolved.
    pub program: Option<String>,
    /// busybox, sysvinit or systemd; null: not an init fwrun recognises.
    pub init: Option<String>,
    /// The machine the program is built for (x86_64, aarch64, arm, ...);
    /// null: not an ELF program.
    pub machine: Option<String>,
    /// The binfmt_misc handler that runs it, when this machine cannot.
    pub emulator: Option<Emulator>,
    pub stop_signal: Option<Chosen>,
    pub console: Option<Chosen>,
}

/// A default and why: `value` is a signal's name (SIGUSR2) or a console
/// mode (pty, inherit); `from` is auto (chosen by fwrun) or flag (given).
#[derive(Debug, Serialize)]
pub struct Chosen {
    pub value: String,
    pub from: String,
    pub why: String,
}

/// A foreign program's binfmt_misc handler.
#[derive(Debug, Serialize)]
pub struct Emulator {
    /// Its name under /proc/sys/fs/binfmt_misc.
    pub handler: String,
    pub interpreter: String,
    pub flags: String,
    /// Whether fwrun bound the interpreter into the firmware (no F flag).
    pub bound: bool,
}

impl Report {
    /// A report for a run just starting; until it ends, it reads as a
    /// launcher error.
    pub fn begin(
        name: &str,
        firmware: &Path,
        init: impl Iterator<Item = String>,
        apparmor_mode: String,
    ) -> Report {
        Report {
            version: VERSION,
            name: name.to_string(),
            firmware: Firmware {
                path: firmware.display().to_string(),
                kind: None,
            },
            init: init.collect(),
            start: timestamp(SystemTime::now()),
            end: String::new(),
            phases: Vec::new(),
            ending: Ending {
                kind: "launcher-error".into(),
                signal: None,
                stop_reason: None,
                error: None,
            },
            stop: None,
            exit_code: 0,
            boots: 0,
            ready_ms: None,
            changes: None,
            apparmor: AppArmor {
                mode: apparmor_mode,
                profile: None,
                denials: Vec::new(),
            },
            confinement: Confinement::default(),
            network: Network {
                mode: "none".into(),
                interfaces: Vec::new(),
                published: Vec::new(),
            },
            cgroup: CgroupInfo::default(),
            detected: Detected::default(),
            kernel: Kernel::default(),
        }
    }

    /// The run failed in fwrun itself.
    pub fn fail(&mut self, code: i32, message: String) {
        self.exit_code = code;
        self.ending = Ending {
            kind: "launcher-error".into(),
            signal: None,
            stop_reason: None,
            error: Some(message),
        };
    }
}

#[derive(Debug, Serialize)]
pub struct Firmware {
    pub path: String,
    /// ext2, ext3, ext4, squashfs or directory; null if it was never read.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Ending {
    /// exited, signaled, powered-off, rebooted, timeout, interrupted or
    /// launcher-error.
    pub kind: String,
    /// For signaled: the signal's name.
    pub signal: Option<String>,
    /// For interrupted: ctrl-c, sigterm, sighup or console-escape.
    pub stop_reason: Option<String>,
    /// For launcher-error: the message fwrun printed.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Stop {
    /// What asked for the stop: ctrl-c, sigterm, sighup, timeout or
    /// console-escape.
    pub reason: String,
    /// The stop signal sent to the init; null when the stop came before the
    /// firmware started.
    pub signal: Option<String>,
    /// true: the init ended by itself after the stop signal; false: it was
    /// killed; null: it had not started.
    pub graceful: Option<bool>,
    /// What made fwrun kill it: stop-timeout, a second stop request
    /// (ctrl-c, sigterm, sighup, console-escape) or stop-signal (the stop
    /// signal was SIGKILL); null when fwrun killed nothing.
    pub killed_by: Option<String>,
    /// From the stop signal to the init's end, in milliseconds.
    pub ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AppArmor {
    /// auto, require or off.
    pub mode: String,
    /// The profile's name, when one was loaded.
    pub profile: Option<String>,
    pub denials: Vec<Denial>,
}

/// The kernel-enforced layers: what the init kept, and what fwrun refused.
#[derive(Debug, Default, Serialize)]
pub struct Confinement {
    /// The capabilities the init kept, and those it lost (short names).
    pub capabilities: Vec<String>,
    pub dropped_capabilities: Vec<String>,
    /// Whether the seccomp filter and the mount interception were on.
    pub seccomp: bool,
    /// The calls fwrun refused, each with how often.
    pub refused: Vec<Refused>,
}

/// The firmware's network.
#[derive(Debug, Serialize)]
pub struct Network {
    /// none, host, veth or bridge.
    pub mode: String,
    /// Its interfaces besides `lo`, once they were made.
    pub interfaces: Vec<Interface>,
    /// The host's ports carried to the firmware's (--publish).
    pub published: Vec<Published>,
}

/// A published port: the host's address and port, the firmware's port.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub host_address: String,
    pub host_port: u16,
    pub port: u16,
    /// tcp or udp.
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    /// Its name in the firmware.
    pub name: String,
    /// veth (a pair with one end on the host) or moved (a host interface).
    pub kind: String,
    /// The veth's end on the host, or the moved interface's host name.
    pub host_name: String,
    /// The address of the veth's host end, when it was given one.
    pub host_address: Option<String>,
    /// The bridge the veth's host end is in.
    pub bridge: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Refused {
    pub syscall: String,
    pub target: String,
    pub reason: String,
    pub count: usize,
    /// The group of a refusal every firmware makes on its device (summed
    /// up in one line on stderr); null for the others.
    pub routine: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Denial {
    pub operation: String,
    pub target: String,
    pub requested: String,
    pub count: usize,
}

/// The run's cgroup (cgroup v2 hosts), or why there was none.
#[derive(Debug, Default, Serialize)]
pub struct CgroupInfo {
    /// Its path under /sys/fs/cgroup; null when none was made.
    pub path: Option<String>,
    /// Why none was made (a v1 or hybrid host), or null.
    pub none_because: Option<String>,
    pub limits: CgroupLimits,
    /// memory.peak (Linux 5.19+).
    pub memory_peak_bytes: Option<u64>,
    /// cpu.stat's user_usec and system_usec.
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    /// memory.events' oom_kill: processes the OOM killer ended.
    pub oom_kills: Option<u64>,
    /// pids.peak (Linux 6.13+).
    pub pids_peak: Option<u64>,
    /// pids.events' max: forks refused at the pids limit.
    pub pids_refused: Option<u64>,
    /// The init itself was OOM-killed (exit 137).
    pub init_oom_killed: bool,
}

/// The limits written to the run's cgroup (null: none).
#[derive(Debug, Default, Serialize)]
pub struct CgroupLimits {
    pub memory_bytes: Option<u64>,
    pub memory_swap_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    pub io_weight: Option<u16>,
}

impl CgroupInfo {
    pub fn set_usage(&mut self, u: &crate::host::cgroup::Usage) {
        self.memory_peak_bytes = u.memory_peak;
        self.cpu_user_usec = u.cpu_user_usec;
        self.cpu_system_usec = u.cpu_system_usec;
        self.oom_kills = u.oom_kills;
        self.pids_peak = u.pids_peak;
        self.pids_refused = u.pids_refused;
    }

    /// The accounting in one line, for the end of -v.
    pub fn summary(&self) -> Option<String> {
        self.path.as_ref()?;
        let opt = |v: Option<u64>, f: &dyn Fn(u64) -> String| v.map_or("n/a".into(), f);
        let ms = |us: u64| format!("{:.1} s", us as f64 / 1e6);
        Some(format!(
            "cgroup: memory peak {}, CPU {} user + {} system, {} OOM kill(s), pids peak {}, {} fork(s) refused",
            opt(self.memory_peak_bytes, &|b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            opt(self.cpu_user_usec, &ms),
            opt(self.cpu_system_usec, &ms),
            opt(self.oom_kills, &|n| n.to_string()),
            opt(self.pids_peak, &|n| n.to_string()),
            opt(self.pids_refused, &|n| n.to_string()),
        ))
    }
}

/// Check where the report goes before anything is touched.
pub fn check_path(path: &Path) -> Result<PathBuf> {
    let shown = path.display();
    if path.is_dir() {
        return Err(fail(format!(
            "--report '{shown}' is a directory: give a file name"
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(fail(format!(
            "--report '{shown}': the directory {} does not exist",
            parent.display()
        )));
    }
    Ok(path.to_path_buf())
}

pub fn write(report: &Report, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    let tmp = path.with_extension("fwrun-tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("writing the report {}: {e}", path.display()))
}

/// RFC 3339 in UTC, to the millisecond.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_824_000_123);
        assert_eq!(timestamp(t), "2026-11-28T00:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
