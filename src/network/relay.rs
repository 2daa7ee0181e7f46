//! The relay of the published ports (publish.rs): a child of fwrun's
//! (process/spawn.rs's `fork_helper`) that holds the host's sockets, joins
//! the firmware's network namespace, and carries each connection, or each
//! client's datagrams, to the firmware's port there.
//!
//! A process rather than threads of fwrun's: fwrun forks the init again
//! after a reboot and forks `exec:` probes, children that run Rust code
//! and may allocate, which is only sound while fwrun has a single thread.
//! The relay has threads of its own (one a listening socket, two a
//! connection, one a datagram flow), and never forks.
//!
//! It lives for one boot: fwrun kills it (SIGKILL) and reaps it once the
//! init has ended, which closes every connection it carried; and it dies
//! with fwrun (its parent-death signal is SIGKILL), so nothing of it
//! outlives a SIGKILL of fwrun's. Between boots, and before the first,
//! connections wait in the listening sockets' backlogs, which fwrun holds.
//!
//! Inside, a connection goes to `127.0.0.1:PORT`; when nothing accepts
//! there, to the address a socket of the firmware's listens on for PORT
//! (a device's web server bound to its LAN address only), as its
//! namespace's /proc/net tables say.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use nix::sched::CloneFlags;

use crate::network::publish::{Bound, Proto};
use crate::process::spawn;
use crate::sys;

/// How long a connection inside may take to be accepted.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long a datagram flow lives without a datagram either way.
pub const UDP_IDLE: Duration = Duration::from_secs(60);
/// The most datagram flows (client addresses) of one port at once.
const MAX_FLOWS: usize = 1024;
/// The relay's pipes, and how much one splice moves at most.
const PIPE_SIZE: i32 = 1 << 20;
const CHUNK: usize = PIPE_SIZE as usize;
/// The stack of each of the relay's threads.
const STACK: usize = 128 << 10;

/// The relay of one boot, killed and reaped when dropped.
pub struct Relay {
    pid: libc::pid_t,
    pidfd: OwnedFd,
}

impl Relay {
    /// Start the relay of `bound` into the network namespace of `init`
    /// (fwrun's own when `own_net` is false: --net host).
    pub fn start(bound: &[Bound], init: libc::pid_t, own_net: bool) -> Result<Relay> {
        let netns = own_net
            .then(|| std::fs::File::open(format!("/proc/{init}/ns/net")))
            .transpose()
            .map_err(|e| {
                anyhow!(
                    "opening the firmware's network namespace: {}",
                    crate::error::io_reason(&e)
                )
            })?;
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| anyhow!("making a pipe: {}", sys::errno_text(e)))?;
        let parent = std::process::id() as i32;
        let forked = spawn::fork_helper(|| {
            let status = match enter(bound, netns.as_ref().map(|f| f.as_fd()), &w, parent) {
                Ok(()) => 0,
                Err(e) => e as u8,
            };
            let _ = sys::fd::write(w.as_raw_fd(), &[status]);
            if status == 0 {
                serve(bound);
            }
        })
        .map_err(|e| {
            anyhow!(
                "starting the relay of the published ports: {}",
                sys::errno_text(e)
            )
        })?;
        drop(w);
        let relay = Relay {
            pid: forked.pid,
            pidfd: forked.pidfd,
        };
        let mut status = [0xffu8];
        let said = std::fs::File::from(r).read(&mut status).unwrap_or(0);
        match (said, status[0]) {
            (1, 0) => Ok(relay),
            (1, e) => Err(anyhow!(
                "the relay of the published ports could not enter the firmware's network: {}",
                sys::errno_text(Errno::from_raw(i32::from(e)))
            )),
            _ => Err(anyhow!(
                "the relay of the published ports ended as it started"
            )),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = sys::pidfd_signal(&self.pidfd, libc::SIGKILL);
        spawn::reap(self.pid);
    }
}

/// The relay's set-up, in the child: die with fwrun, keep nothing of
/// fwrun's open but the host's sockets and its standard descriptors, join
/// the firmware's network.
fn enter(
    bound: &[Bound],
    netns: Option<std::os::fd::BorrowedFd>,
    status: &OwnedFd,
    parent: i32,
) -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() != parent {
        // fwrun died before the parent-death signal was set.
        return Err(Errno::ESRCH);
    }
    // fwrun's standard descriptors stay: closed, their numbers would go to
    // sockets, and a panic's message to a client.
    let mut keep: Vec<i32> = vec![0, 1, 2];
    keep.extend(bound.iter().map(|b| b.sock.as_raw_fd()));
    keep.push(status.as_raw_fd());
    keep.extend(netns.map(|n| n.as_raw_fd()));
    sys::fd::close_all_but(&keep)?;
    // Many connections at once, each six descriptors: as many as allowed.
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let most = getrlimit(Resource::Nofile).maximum;
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: most,
            maximum: most,
        },
    );
    if let Some(ns) = netns {
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)?;
    }
    Ok(())
}

/// Serve every published port until killed.
fn serve(bound: &[Bound]) {
    let mut threads = Vec::new();
    for b in bound {
        let Ok(sock) = b.sock.try_clone() else {
            continue;
        };
        let port = b.spec.port;
        let t = match b.spec.proto {
            Proto::Tcp => thread(move || accept_loop(TcpListener::from(sock), port)),
            Proto::Udp => thread(move || datagram_loop(UdpSocket::from(sock), port)),
        };
        threads.extend(t);
    }
    for t in threads {
        let _ = t.join();
    }
}

fn thread(f: impl FnOnce() + Send + 'static) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().stack_size(STACK).spawn(f).ok()
}

fn accept_loop(listener: TcpListener, port: u16) {
    loop {
        match listener.accept() {
            Ok((client, _)) => {
                // Without a thread, the connection is closed at once.
                let _ = thread(move || carry(client, port));
            }
            Err(e) if go_on(&e) => {}
            Err(_) => return,
        }
    }
}

/// Whether to go on after a failed accept or receive on a host socket: yes
/// after a pending error of one peer's, and after a short wait when out of
/// descriptors or memory (connections end meanwhile); no when the socket
/// itself is unusable (which would otherwise spin).
fn go_on(e: &std::io::Error) -> bool {
    match e.raw_os_error() {
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => false,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            std::thread::sleep(Duration::from_millis(20));
            true
        }
        _ => true,
    }
}

/// One connection, both ways, until both sides are done.
fn carry(client: TcpStream, port: u16) {
    let Some(inside) = connect_inside(port) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = inside.set_nodelay(true);
    let (client, inside) = (Arc::new(client), Arc::new(inside));
    let (c, i) = (client.clone(), inside.clone());
    let Some(up) = thread(move || pump(&c, &i)) else {
        return;
    };
    pump(&inside, &client);
    let _ = up.join();
}

fn connect_inside(port: u16) -> Option<TcpStream> {
    let lo = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    match TcpStream::connect_timeout(&lo, CONNECT_WAIT) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            let addr = listening(port, Proto::Tcp)?;
            TcpStream::connect_timeout(&addr, CONNECT_WAIT).ok()
        }
        Err(_) => None,
    }
}

/// `src` to `dst` until `src` ends (then `dst` is told no more comes) or
/// either fails (then both are shut, which ends the other direction too).
fn pump(src: &TcpStream, dst: &TcpStream) {
    let done = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok((r, w)) => {
            // A larger pipe moves more a call (the default is 64 KiB).
            let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
            spliced(src, dst, &r, &w)
        }
        Err(_) => copied(src, dst),
    };
    match done {
        Ok(()) => {
            let _ = dst.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = src.shutdown(Shutdown::Both);
            let _ = dst.shutdown(Shutdown::Both);
        }
    }
}

/// Through a pipe with splice(2): the bytes never enter the relay.
fn spliced(src: &TcpStream, dst: &TcpStream, r: &OwnedFd, w: &OwnedFd) -> Result<(), Errno> {
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    loop {
        let n = match splice(src, None, w, None, CHUNK, flags) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            match splice(r, None, dst, None, left, flags) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(m) => left -= m,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Through a buffer, where no pipe could be made.
fn copied(mut src: &TcpStream, mut dst: &TcpStream) -> Result<(), Errno> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => dst.write_all(&buf[..n]).map_err(|_| Errno::EPIPE)?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Errno::EIO),
        }
    }
}

/// A client's datagram flow: a socket inside, and when it was last used
/// (ms since the relay started).
struct Flow {
    sock: UdpSocket,
    last: AtomicU64,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

fn datagram_loop(host: UdpSocket, port: u16) {
    let flows: Flows = Arc::default();
    let epoch = Instant::now();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match host.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if go_on(&e) => continue,
            Err(_) => return,
        };
        let flow = {
            let mut map = flows.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&client) {
                Some(f) => Some(f.clone()),
                None if map.len() >= MAX_FLOWS => None,
                None => open_flow(&host, client, port, &flows, epoch).inspect(|f| {
                    map.insert(client, f.clone());
                }),
            }
        };
        if let Some(f) = flow {
            f.last
                .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let _ = f.sock.send(&buf[..n]);
        }
    }
}

/// A socket inside for `client`'s datagrams, and the thread that sends
/// the replies back to it until the flow is idle for [`UDP_IDLE`].
fn open_flow(
    host: &UdpSocket,
    client: SocketAddr,
    port: u16,
    flows: &Flows,
    epoch: Instant,
) -> Option<Arc<Flow>> {
    let target = listening(port, Proto::Udp)
        .unwrap_or_else(|| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    let any: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    sock.connect(target).ok()?;
    sock.set_read_timeout(Some(UDP_IDLE / 4)).ok()?;
    let flow = Arc::new(Flow {
        sock,
        last: AtomicU64::new(epoch.elapsed().as_millis() as u64),
    });
    let reply = host.try_clone().ok()?;
    let (f, flows) = (flow.clone(), flows.clone());
    thread(move || replies(&f, &reply, client, &flows, epoch))?;
    Some(flow)
}

fn replies(flow: &Arc<Flow>, host: &UdpSocket, client: SocketAddr, flows: &Flows, epoch: Instant) {
    let mut buf = vec![0u8; 65536];
    loop {
        match flow.sock.recv(&mut buf) {
            Ok(n) => {
                flow.last
                    .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                let _ = host.send_to(&buf[..n], client);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let idle = (epoch.elapsed().as_millis() as u64)
                    .saturating_sub(flow.last.load(Ordering::Relaxed));
                if idle >= UDP_IDLE.as_millis() as u64 {
                    break;
                }
            }
            // Nothing listened inside yet (an ICMP port unreachable).
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let mut map = flows.lock().unwrap_or_else(|e| e.into_inner());
    if map.get(&client).is_some_and(|f| Arc::ptr_eq(f, flow)) {
        map.remove(&client);
    }
}

/// The address a socket of this network namespace listens on for `port`,
/// when none takes `127.0.0.1:PORT` (one bound to a LAN address, or to
/// another loopback address).
fn listening(port: u16, proto: Proto) -> Option<SocketAddr> {
    let (v4, v6) = match proto {
        Proto::Tcp => ("/proc/self/net/tcp", "/proc/self/net/tcp6"),
        Proto::Udp => ("/proc/self/net/udp", "/proc/self/net/udp6"),
    };
    // A listening TCP socket is in state 0A; an unconnected UDP one, 07.
    let state = match proto {
        Proto::Tcp => "0A",
        Proto::Udp => "07",
    };
    let mut found: Vec<IpAddr> = Vec::new();
    for table in [v4, v6] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        found.extend(bound_on(&text, port, state));
    }
    // One that 127.0.0.1 reaches was refused for another reason.
    if found
        .iter()
        .any(|a| a.is_unspecified() || *a == IpAddr::from(Ipv4Addr::LOCALHOST))
    {
        return None;
    }
    found.first().map(|a| SocketAddr::new(*a, port))
}

/// The local addresses, in a /proc/net/{tcp,udp}[6] table, of the sockets
/// in `state` on `port`.
fn bound_on(table: &str, port: u16, state: &str) -> Vec<IpAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let st = f.nth(1)?;
            let (addr, p) = local.split_once(':')?;
            (st == state && u16::from_str_radix(p, 16).ok()? == port)
                .then(|| proc_addr(addr))
                .flatten()
        })
        .collect()
}

/// An address as /proc/net prints it: 32-bit words in hex, each in the
/// machine's byte order.
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_ne_bytes)
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_the_proc_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0101A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0101A8C0:0050 0201A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                bound_on(tcp, 80, "0A"),
                vec![IpAddr::from([192, 168, 1, 1])]
            );
            assert_eq!(
                bound_on(tcp, 8080, "0A"),
                vec![IpAddr::from([127, 0, 0, 1])]
            );
            let v6 = "hdr\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A x\n";
            assert_eq!(
                bound_on(v6, 22, "0A"),
                vec![IpAddr::from(Ipv6Addr::LOCALHOST)]
            );
        }
        assert!(bound_on(tcp, 81, "0A").is_empty());
        assert!(bound_on("", 80, "0A").is_empty());
    }
}
