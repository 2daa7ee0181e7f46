//! `fwrun list`: the live runs, as a table or (`--json`) as an array
//! (schemas/list.schema.json). What dead runs left is swept first, so
//! they are never listed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::control::human;
use crate::host::preflight;
use crate::report::timestamp;
use crate::state::{self, live, Sweeper};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    pub json: bool,
}

/// One live run, as listed.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    /// The firmware as the run was given it (an absolute path).
    pub firmware: String,
    /// The init's pid on the host; null until it runs.
    pub pid: Option<i32>,
    /// The run's fwrun process.
    pub fwrun_pid: i32,
    /// booting, ready or stopping.
    pub state: String,
    /// When the run started (UTC, RFC 3339), and how long ago, in seconds.
    pub started: String,
    pub uptime_s: u64,
    pub network: Network,
}

#[derive(Debug, Serialize)]
pub struct Network {
    /// none, host, veth or bridge.
    pub mode: String,
    /// The host's side of the firmware's link, and its address, when the
    /// mode gives it one.
    pub interface: Option<String>,
    pub address: Option<String>,
    /// The host's ports carried to the firmware's (--publish).
    pub published: Vec<live::Port>,
}

/// `sweeper` releases what dead runs left, as `fwrun --cleanup` does.
pub fn list(opts: &ListOptions, sweeper: &mut dyn Sweeper) -> Result<i32> {
    preflight::check_root()?;
    let hold = state::root::hold_existing();
    if let Err(e) = state::sweep(sweeper) {
        eprintln!("fwrun: warning: sweeping dead runs: {e:#}");
    }
    let entries = entries()?;
    if let Some(Err(e)) = hold.map(|h| h.release()) {
        eprintln!("fwrun: warning: {e:#}");
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!("{}", table(&entries));
    }
    Ok(0)
}

pub fn entries() -> Result<Vec<Entry>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut out = Vec::new();
    for run in live::all()? {
        let facts = run.facts().unwrap_or_default();
        out.push(Entry {
            name: run.name.clone(),
            firmware: facts.firmware,
            pid: run.init().ok().map(|(pid, _)| pid),
            fwrun_pid: run.pid,
            state: run.phase().word().to_string(),
            started: timestamp(UNIX_EPOCH + Duration::from_secs(run.start)),
            uptime_s: now.saturating_sub(run.start),
            network: Network {
                mode: facts.net,
                interface: facts.interface,
                address: facts.address,
                published: facts.published,
            },
        });
    }
    Ok(out)
}

/// A published port as the table shows it: `127.0.0.1:8080->80/tcp`.
fn published(p: &live::Port) -> String {
    let host = match p.host_address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(a)) => format!("[{a}]"),
        _ => p.host_address.clone(),
    };
    format!("{host}:{}->{}/{}", p.host_port, p.port, p.protocol)
}

fn table(entries: &[Entry]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "FIRMWARE".into(),
        "PID".into(),
        "STATE".into(),
        "UPTIME".into(),
        "NETWORK".into(),
    ]];
    for e in entries {
        let mut net = match (&e.network.interface, &e.network.address) {
            (Some(i), Some(a)) => format!("{} {i} {a}", e.network.mode),
            (Some(i), None) => format!("{} {i}", e.network.mode),
            _ => e.network.mode.clone(),
        };
        for p in &e.network.published {
            net.push_str(&format!(" {}", published(p)));
        }
        rows.push([
            e.name.clone(),
            e.firmware.clone(),
            e.pid.map_or("-".into(), |p| p.to_string()),
            e.state.clone(),
            human(Duration::from_secs(e.uptime_s)),
            net,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let e = Entry {
            name: "t1".into(),
            firmware: "/srv/fw.ext2".into(),
            pid: Some(4242),
            fwrun_pid: 4241,
            state: "ready".into(),
            started: "2026-01-01T00:00:00.000Z".into(),
            uptime_s: 75,
            network: Network {
                mode: "none".into(),
                interface: None,
                address: None,
                published: vec![
                    live::Port {
                        host_address: "127.0.0.1".into(),
                        host_port: 8080,
                        port: 80,
                        protocol: "tcp".into(),
                    },
                    live::Port {
                        host_address: "::1".into(),
                        host_port: 5353,
                        port: 53,
                        protocol: "udp".into(),
                    },
                ],
            },
        };
        let t = table(&[e]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME  FIRMWARE      PID   STATE  UPTIME  NETWORK");
        assert_eq!(
            lines[1],
            "t1    /srv/fw.ext2  4242  ready  1m15s   none 127.0.0.1:8080->80/tcp [::1]:5353->53/udp"
        );
    }
}
