//! --report FILE: what happened in the run, as JSON, for CI jobs and scripts.
//! Its fields are documented in the man page and pinned by
//! schemas/report.schema.json.

pub mod changes;
pub mod log;

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

#[derive(Debug, Serialize)]
pub struct Refused {
    pub syscall: String,
    pub target: String,
    pub reason: String,
    pub count: usize,
}

#[derive(Debug, Serialize)]
pub struct Denial {
    pub operation: String,
    pub target: String,
    pub requested: String,
    pub count: usize,
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
