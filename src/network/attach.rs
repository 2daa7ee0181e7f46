//! Giving one boot of the firmware its links, and taking them back: the
//! veth, made with its firmware side already in the firmware's network
//! namespace, and the interfaces moved in. Called by the launcher after the
//! clone, while the child waits before its exec; the value it returns holds
//! the firmware's namespace until the links are taken back.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::error::fail;
use crate::network::netlink::{Change, Rtnl};
use crate::network::{lookup, rtnl, HostAddr, Move, Plan, Veth};
use crate::sys::errno_text;

/// The flags `ip link set` can change, which a moved interface gets back.
pub const SETTABLE_FLAGS: u32 = (libc::IFF_UP
    | libc::IFF_DEBUG
    | libc::IFF_NOTRAILERS
    | libc::IFF_NOARP
    | libc::IFF_DYNAMIC
    | libc::IFF_MULTICAST
    | libc::IFF_PORTSEL
    | libc::IFF_AUTOMEDIA
    | libc::IFF_PROMISC
    | libc::IFF_ALLMULTI) as u32;

/// A moved interface: how to find it inside, and what to give back.
struct Moved {
    host: String,
    inside_index: u32,
    flags: u32,
    mtu: Option<u32>,
}

/// What one boot of the firmware was given; `detach` (or the drop) takes it
/// back.
pub struct Attached {
    netns: OwnedFd,
    host: Rtnl,
    /// A socket inside the firmware's namespace, and the host's namespace,
    /// to move interfaces back.
    inside: Option<(Rtnl, OwnedFd)>,
    veth: Option<HostEnd>,
    moved: Vec<Moved>,
    done: bool,
    /// The firmware's socket counts (/proc/PID/net/sockstat, sockstat6),
    /// opened while its init lived: read at the end, they tell whether a
    /// connection may keep its namespace, and so the veth, alive.
    tcp_tables: Vec<std::fs::File>,
}

/// The veth's end on the host, and its address.
struct HostEnd {
    name: String,
    addr: Option<(u32, HostAddr)>,
}

impl Attached {
    /// Move the interfaces back and restore their flags; with `delete`,
    /// delete the veth now. Without it, the veth goes with the firmware's
    /// namespace once this value is dropped: the kernel deletes both ends
    /// then, in the background, which spares the run the 10 to 20 ms a
    /// deletion waits for the kernel (RCU), as it already does for `lo`.
    /// Returns what failed, as lines.
    pub fn detach(&mut self, delete: bool) -> Vec<String> {
        if std::mem::replace(&mut self.done, true) {
            return Vec::new();
        }
        let mut failures = Vec::new();
        for m in std::mem::take(&mut self.moved).into_iter().rev() {
            if let Err(e) = self.move_back(&m) {
                failures.push(format!("moving {} back to the host: {e:#}", m.host));
            }
        }
        if let Some(end) = self.veth.take() {
            if let Err(e) = self.release(&end, delete) {
                failures.push(format!("{e:#}"));
            }
        }
        failures
    }

    /// Delete the veth now; or, when the kernel will, take its address
    /// away at once, so that a run started right after this one may use it
    /// again.
    fn release(&mut self, end: &HostEnd, delete: bool) -> Result<()> {
        if delete {
            return delete_named(&mut self.host, &end.name)
                .map_err(|e| anyhow!("deleting interface {}: {e:#}", end.name));
        }
        let Some((index, a)) = end.addr else {
            return Ok(());
        };
        match self.host.del_addr4(index, a.addr, a.prefix) {
            Ok(()) | Err(Errno::ENODEV) | Err(Errno::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(anyhow!("taking {a} from {}: {}", end.name, errno_text(e))),
        }
    }

    fn move_back(&mut self, m: &Moved) -> Result<()> {
        let (inside, host_ns) = self
            .inside
            .as_mut()
            .ok_or_else(|| anyhow!("no socket in the firmware's namespace"))?;
        let change = Change {
            netns: Some(host_ns.as_fd()),
            name: Some(&m.host),
            ..Change::default()
        };
        match inside.set_link(m.inside_index, &change) {
            Ok(()) => {}
            Err(Errno::ENODEV) => return Err(anyhow!("the firmware deleted it")),
            Err(e) => return Err(anyhow!("{}", errno_text(e))),
        }
        let link = lookup(&mut self.host, &m.host)?
            .ok_or_else(|| anyhow!("it did not come back as {}", m.host))?;
        let restore = Change {
            flags: Some((m.flags & SETTABLE_FLAGS, SETTABLE_FLAGS)),
            mtu: m.mtu.filter(|&v| link.mtu != Some(v)),
            ..Change::default()
        };
        self.host
            .set_link(link.index, &restore)
            .map_err(|e| anyhow!("restoring its flags: {}", errno_text(e)))
    }

    /// `detach` as one result, for the teardown. The veth's host end loses
    /// its address at once; once this value lets go of the firmware's
    /// namespace, the kernel deletes the pair by itself within a few ms,
    /// which spares the run the 10 to 20 ms a deletion waits for the kernel.
    /// Unless something keeps that namespace alive: a TCP connection of the
    /// firmware's that outlives its processes (closing, or in TIME_WAIT,
    /// for up to a minute). When the firmware's socket counts show one,
    /// the host end is deleted here, so that it never outlives the run.
    pub fn finish(mut self) -> Result<()> {
        let name = self.veth.as_ref().map(|v| v.name.clone());
        let lingering = tcp_connections(std::mem::take(&mut self.tcp_tables));
        let mut failures = self.detach(false);
        drop(self);
        if let Some(name) = name.filter(|_| lingering) {
            if let Err(e) = rtnl().and_then(|mut nl| delete_named(&mut nl, &name)) {
                failures.push(format!("deleting interface {name}: {e:#}"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", failures.join("; ")))
        }
    }
}

/// Whether the firmware's namespace still has a TCP socket, by its socket
/// counts (/proc/PID/net/sockstat and sockstat6: `TCP: inuse N … tw N`,
/// `TCP6: inuse N`, counted per namespace). Reading them costs nothing,
/// where a walk of the TCP tables costs milliseconds on a large host. No
/// count, or one that cannot be read, counts as a socket: the veth is then
/// deleted, at a cost, rather than trusted to go by itself.
fn tcp_connections(tables: Vec<std::fs::File>) -> bool {
    use std::io::Read;
    tables.is_empty()
        || tables.into_iter().any(|mut f| {
            let mut text = String::new();
            f.read_to_string(&mut text).is_err() || counts_show_tcp(&text)
        })
}

/// Whether a sockstat text counts a TCP socket in use or in TIME_WAIT (or
/// has no count at all).
fn counts_show_tcp(text: &str) -> bool {
    let counts: Vec<Option<u64>> = text
        .lines()
        .filter(|l| l.starts_with("TCP: ") || l.starts_with("TCP6: "))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .windows(2)
                .filter(|w| w[0] == "inuse" || w[0] == "tw")
                .map(|w| w[1].parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    counts.is_empty() || counts.iter().any(|c| *c != Some(0))
}

impl Drop for Attached {
    fn drop(&mut self) {
        for f in self.detach(true) {
            eprintln!("fwrun: warning: {f}");
        }
    }
}

/// How long a new veth waits for one of the same name, left by the run
/// before, to go.
const LEFTOVER_WAIT: Duration = Duration::from_secs(2);

/// Give the firmware whose init is `pid` what `plan` says. On failure,
/// what was already done is undone (the value's drop).
pub fn attach(plan: &Plan, pid: libc::pid_t) -> Result<Attached> {
    let netns = open_ns(&format!("/proc/{pid}/ns/net"))
        .context("opening the firmware's network namespace")?;
    let inside = if plan.moves.is_empty() {
        None
    } else {
        Some(socket_inside(&netns)?)
    };
    let tcp_tables = match plan.veth {
        // A missing table (no IPv6) lists nothing.
        Some(_) => ["sockstat", "sockstat6"]
            .iter()
            .filter_map(|t| std::fs::File::open(format!("/proc/{pid}/net/{t}")).ok())
            .collect(),
        None => Vec::new(),
    };
    let mut att = Attached {
        host: rtnl()?,
        netns,
        inside,
        veth: None,
        moved: Vec::new(),
        done: false,
        tcp_tables,
    };
    if let Some(v) = &plan.veth {
        make_veth(&mut att, v)?;
    }
    for m in &plan.moves {
        move_in(&mut att, m)?;
    }
    Ok(att)
}

fn open_ns(path: &str) -> Result<OwnedFd> {
    let f = std::fs::File::open(Path::new(path))
        .map_err(|e| anyhow!("{path}: {}", crate::error::io_reason(&e)))?;
    Ok(f.into())
}

/// A netlink socket in the firmware's namespace (to move interfaces back
/// from it, even once its processes are gone), and the host's namespace.
fn socket_inside(netns: &OwnedFd) -> Result<(Rtnl, OwnedFd)> {
    let host_ns = open_ns("/proc/thread-self/ns/net")?;
    nix::sched::setns(netns, CloneFlags::CLONE_NEWNET).map_err(|e| {
        anyhow!(
            "entering the firmware's network namespace: {}",
            errno_text(e)
        )
    })?;
    let sock = Rtnl::open();
    if let Err(e) = nix::sched::setns(&host_ns, CloneFlags::CLONE_NEWNET) {
        // fwrun would go on in the firmware's network: stop here.
        eprintln!(
            "fwrun: returning to the host's network namespace: {}",
            errno_text(e)
        );
        std::process::abort();
    }
    let sock = sock.map_err(|e| {
        anyhow!(
            "opening a netlink socket in the firmware's network: {}",
            errno_text(e)
        )
    })?;
    Ok((sock, host_ns))
}

fn make_veth(att: &mut Attached, v: &Veth) -> Result<()> {
    let master = match &v.bridge {
        Some(br) => Some(
            lookup(&mut att.host, br)?
                .ok_or_else(|| fail(format!("--net bridge:{br}: the bridge {br} is gone")))?
                .index,
        ),
        None => None,
    };
    // A run of the same name that just ended may still have its veth: the
    // kernel deletes it with that run's namespace, soon.
    let deadline = Instant::now() + LEFTOVER_WAIT;
    loop {
        match att
            .host
            .add_veth(&v.host, &v.inside, att.netns.as_fd(), master)
        {
            Ok(()) => break,
            Err(Errno::EEXIST) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(Errno::EEXIST) => {
                return Err(fail(format!(
                    "the host has an interface {} already: is its network still used (ip netns, nsenter)? Delete it with ip link del {}",
                    v.host, v.host
                )))
            }
            Err(Errno::EOPNOTSUPP) => {
                return Err(fail(
                    "this kernel has no veth driver: modprobe veth, or use --net none",
                ))
            }
            Err(e) => {
                return Err(anyhow!(
                    "creating the veth pair {}: {}",
                    v.host,
                    errno_text(e)
                ))
            }
        }
    }
    let mut end = HostEnd {
        name: v.host.clone(),
        addr: None,
    };
    let result = match v.addr {
        Some(a) => add_address(&mut att.host, &mut end, a),
        None => Ok(()),
    };
    att.veth = Some(end);
    result
}

fn add_address(nl: &mut Rtnl, end: &mut HostEnd, a: HostAddr) -> Result<()> {
    let link =
        lookup(nl, &end.name)?.ok_or_else(|| anyhow!("the new interface {} is gone", end.name))?;
    nl.add_addr4(link.index, a.addr, a.prefix)
        .map_err(|e| anyhow!("giving {} the address {a}: {}", end.name, errno_text(e)))?;
    end.addr = Some((link.index, a));
    Ok(())
}

fn move_in(att: &mut Attached, m: &Move) -> Result<()> {
    let flag = format!("--net-move {}", m.host);
    let link = lookup(&mut att.host, &m.host)?
        .ok_or_else(|| fail(format!("{flag}: the interface {} is gone", m.host)))?;
    let change = Change {
        netns: Some(att.netns.as_fd()),
        name: Some(&m.inside),
        ..Change::default()
    };
    att.host
        .set_link(link.index, &change)
        .map_err(|e| match e {
            Errno::EEXIST => fail(format!(
                "{flag}: the firmware has an interface {} already",
                m.inside
            )),
            Errno::EINVAL => fail(format!(
                "{flag}: the kernel does not let {} change network namespace",
                m.host
            )),
            e => anyhow!("{flag}: {}", errno_text(e)),
        })?;
    // Noted at once, under the index it had (a move keeps it when it can),
    // so that a failure below still brings it back.
    att.moved.push(Moved {
        host: m.host.clone(),
        inside_index: link.index,
        flags: link.flags,
        mtu: link.mtu,
    });
    let (inside, _) = att.inside.as_mut().expect("a socket inside");
    let found = inside
        .link(&m.inside)
        .map_err(|e| anyhow!("{flag}: looking it up inside: {}", errno_text(e)))?
        .ok_or_else(|| anyhow!("{flag}: it is not in the firmware's network"))?;
    if let Some(last) = att.moved.last_mut() {
        last.inside_index = found.index;
    }
    Ok(())
}

/// Delete the link named `name` (the veth's host side; its peer goes with
/// it). Gone already is fine.
pub fn delete_named(nl: &mut Rtnl, name: &str) -> Result<()> {
    match nl.del_link_named(name) {
        Ok(()) | Err(Errno::ENODEV) => Ok(()),
        Err(e) => Err(anyhow!("{}", errno_text(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::counts_show_tcp;

    #[test]
    fn socket_counts_tell_a_lingering_connection() {
        let idle =
            "sockets: used 25\nTCP: inuse 0 orphan 3 tw 0 alloc 9 mem 0\nUDP: inuse 2 mem 0\n";
        assert!(!counts_show_tcp(idle));
        // orphan and alloc count the whole host: only inuse and tw matter.
        assert!(counts_show_tcp(
            &idle.replace("inuse 0 orphan", "inuse 1 orphan")
        ));
        assert!(counts_show_tcp(&idle.replace("tw 0", "tw 2")));
        assert!(!counts_show_tcp("TCP6: inuse 0\nUDP6: inuse 1\n"));
        assert!(counts_show_tcp("TCP6: inuse 1\nUDP6: inuse 0\n"));
        // Nothing to read, or a format this does not know: a socket.
        assert!(counts_show_tcp(""));
        assert!(counts_show_tcp("TCP: inuse x\n"));
    }
}
