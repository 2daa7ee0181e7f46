//! What AppArmor refused the firmware: the run's `apparmor="DENIED"`
//! records, read from the kernel log from where it stood when the run
//! started (or from the audit log when auditd runs, since auditd takes the
//! records away from the kernel log), summarised at the end or printed as
//! they come with --follow-denials.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::confine::tally::Tally;

const AUDIT_LOG: &str = "/var/log/audit/audit.log";

/// One refused access.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Denial {
    pub operation: String,
    /// The path, capability, or mount point refused.
    pub target: String,
    pub requested: String,
}

impl Denial {
    /// Parse one log record, if it is a denial of `profile`.
    pub fn parse(line: &str, profile: &str) -> Option<Denial> {
        if !line.contains("apparmor=\"DENIED\"") {
            return None;
        }
        let fields = fields(line);
        if fields.get("profile").map(String::as_str) != Some(profile) {
            return None;
        }
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let target = ["name", "capname"]
            .iter()
            .find_map(|k| fields.get(*k).cloned())
            .unwrap_or_default();
        let target = match fields.get("fstype") {
            Some(fs) => format!("{target} ({fs})"),
            None => target,
        };
        Some(Denial {
            operation: get("operation"),
            target,
            requested: get("requested_mask"),
        })
    }
}

/// key=value and key="value" pairs of an audit record.
fn fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit([' ', ':', ';'])
            .next()
            .unwrap_or("")
            .to_string();
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.entry(key).or_insert(value);
        rest = tail;
    }
    out
}

enum Source {
    /// /dev/kmsg, positioned at the end when the run started.
    Kmsg(File),
    /// The audit log, from its size when the run started.
    Audit(File),
}

/// The run's denials, read from where the log stood at the start.
pub struct Denials {
    profile: String,
    source: Source,
    partial: String,
    /// Each kind once, with its count.
    pub seen: Tally<Denial>,
}

fn auditd_running() -> bool {
    ["/run/auditd.pid", "/var/run/auditd.pid"].iter().any(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    })
}

impl Denials {
    /// Start watching for `profile`'s denials. None if no log can be read.
    pub fn start(profile: &str) -> Option<Denials> {
        let source = if auditd_running() {
            let mut f = File::open(AUDIT_LOG).ok()?;
            f.seek(SeekFrom::End(0)).ok()?;
            Source::Audit(f)
        } else {
            let mut f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/kmsg")
                .ok()?;
            // /dev/kmsg takes SEEK_END as "after the last record".
            let _ = f.seek(SeekFrom::End(0));
            Source::Kmsg(f)
        };
        Some(Denials {
            profile: profile.to_string(),
            source,
            partial: String::new(),
            seen: Tally::default(),
        })
    }

    /// The descriptor to poll for new records (the kernel log only).
    pub fn fd(&self) -> Option<RawFd> {
        match &self.source {
            Source::Kmsg(f) => Some(f.as_raw_fd()),
            Source::Audit(_) => None,
        }
    }

    /// Read what is new; returns the new denials.
    pub fn read_new(&mut self) -> Vec<Denial> {
        let mut new = Vec::new();
        match &mut self.source {
            Source::Kmsg(f) => {
                let mut buf = vec![0u8; 8192];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            let rec = String::from_utf8_lossy(&buf[..n]);
                            new.extend(Denial::parse(&rec, &self.profile));
                        }
                        // EPIPE: records were overwritten; go on from here.
                        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                        Err(_) => break,
                    }
                }
            }
            Source::Audit(f) => {
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                self.partial.push_str(&text);
                let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
                for line in self.partial[..complete].lines() {
                    new.extend(Denial::parse(line, &self.profile));
                }
                self.partial.drain(..complete);
            }
        }
        for d in &new {
            self.seen.add(d.clone());
        }
        new
    }

    /// After the run: the kernel logs audit records from a thread of its
    /// own, a moment after the fact. Read until the log has been quiet for
    /// a little while (bounded).
    pub fn settle(&mut self) {
        let quiet = Duration::from_millis(25);
        let limit = Instant::now() + Duration::from_millis(400);
        let mut last_new = Instant::now();
        while Instant::now() < limit && last_new.elapsed() < quiet {
            if !self.read_new().is_empty() {
                last_new = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// (denial, count), most frequent first.
    pub fn summary(&self) -> Vec<(Denial, usize)> {
        let mut v = self.seen.kinds().to_vec();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Whether to colour stderr: a terminal, and NO_COLOR unset or empty.
/// The end-of-run summary of what AppArmor refused, as lines to say (none
/// when nothing was refused).
pub fn summary_lines(profile: &str, d: &Denials) -> Vec<String> {
    let summary = d.summary();
    if summary.is_empty() {
        return Vec::new();
    }
    let word = denied_word(colour());
    let mut lines = vec![format!(
        "AppArmor {word} {} access{} of the firmware (profile {profile}):",
        d.seen.total(),
        if d.seen.total() == 1 { "" } else { "es" }
    )];
    for (den, n) in summary {
        let times = if n > 1 {
            format!("  x{n}")
        } else {
            String::new()
        };
        lines.push(format!("  {}{times}", describe(&den)));
    }
    if d.seen.untold() > 0 {
        lines.push(format!("  and {} more, of other kinds", d.seen.untold()));
    }
    lines
}

/// The denials as the report lists them.
pub fn for_report(d: &Denials) -> Vec<crate::report::Denial> {
    d.summary()
        .into_iter()
        .map(|(den, count)| crate::report::Denial {
            operation: den.operation,
            target: den.target,
            requested: den.requested,
            count,
        })
        .collect()
}

pub fn colour() -> bool {
    wants_colour(
        std::env::var_os("NO_COLOR").as_deref(),
        nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
    )
}

fn wants_colour(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// "DENIED", in red where colour is wanted.
pub fn denied_word(colour: bool) -> &'static str {
    if colour {
        "\x1b[31mDENIED\x1b[0m"
    } else {
        "DENIED"
    }
}

pub fn describe(d: &Denial) -> String {
    if d.requested.is_empty() {
        format!("{} {}", d.operation, d.target)
    } else {
        format!("{} {} ({})", d.operation, d.target, d.requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = "5,1234,5678,-;audit: type=1400 audit(1700000000.123:45): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"fwrun-t1-0000abcd\" name=\"/proc/sysrq-trigger\" pid=108 comm=\"sh\" requested_mask=\"wc\" denied_mask=\"wc\" fsuid=0 ouid=0\n";

    #[test]
    fn parses_a_kernel_record() {
        let d = Denial::parse(REC, "fwrun-t1-0000abcd").unwrap();
        assert_eq!(d.operation, "open");
        assert_eq!(d.target, "/proc/sysrq-trigger");
        assert_eq!(d.requested, "wc");
        assert!(
            Denial::parse(REC, "fwrun-t2-0000abcd").is_none(),
            "another run's"
        );
        assert!(
            Denial::parse(REC, "fwrun-t1-1111abcd").is_none(),
            "another run's with the same name"
        );
        assert!(Denial::parse(REC, "fwrun-t1").is_none());
        assert!(Denial::parse(&REC.replace("DENIED", "AUDIT"), "fwrun-t1-0000abcd").is_none());
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(wants_colour(None, true));
        assert!(wants_colour(Some(OsStr::new("")), true));
        assert!(!wants_colour(Some(OsStr::new("1")), true));
        assert!(!wants_colour(None, false));
        assert_eq!(denied_word(false), "DENIED");
        assert!(denied_word(true).contains("\x1b[31m"));
    }

    #[test]
    fn capability_and_mount_records() {
        let cap = "audit: type=1400 audit(1.2:3): apparmor=\"DENIED\" operation=\"capable\" class=\"cap\" profile=\"fwrun-x\" pid=1 comm=\"date\" capability=25  capname=\"sys_time\"";
        let d = Denial::parse(cap, "fwrun-x").unwrap();
        assert_eq!(
            (d.operation.as_str(), d.target.as_str()),
            ("capable", "sys_time")
        );
        let mnt = "apparmor=\"DENIED\" operation=\"mount\" class=\"mount\" info=\"failed type match\" error=-13 profile=\"fwrun-x\" name=\"/mnt/p/\" pid=9 comm=\"mount\" fstype=\"proc\" srcname=\"proc\" flags=\"rw\"";
        let d = Denial::parse(mnt, "fwrun-x").unwrap();
        assert_eq!(d.target, "/mnt/p/ (proc)");
    }
}
