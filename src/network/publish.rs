//! `--publish [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]`: a port of the firmware's
//! own network reached from the host, whatever `--net` gives it (`none`
//! included). The host's sockets are bound here, before anything is
//! mounted (a port another program holds is bad input); relay.rs carries
//! each connection, or each client's datagrams, to the firmware's
//! `127.0.0.1:PORT` from inside its network namespace. Nothing of it is a
//! rule or a setting of the host's: it all goes with fwrun's process.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use anyhow::Result;

use crate::error::fail;

/// The protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `--publish`: the host's address and port, the firmware's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub host: SocketAddr,
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.proto.label())
    }
}

fn port(s: &str, what: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("'{s}' is not a {what} from 1 to 65535"))
}

/// `[HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]`; HOSTADDR is an IPv4 address or
/// a bracketed IPv6 one, 127.0.0.1 when left out.
pub fn parse(s: &str) -> Result<Publish, String> {
    let usage = || {
        format!(
            "'{}': give [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp",
            s.escape_default()
        )
    };
    let (rest, proto) = match s.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some(_) => return Err(usage()),
        None => (s, Proto::Tcp),
    };
    let (front, inside) = rest.rsplit_once(':').ok_or_else(usage)?;
    let (addr, host_port) = match front.rsplit_once(':') {
        Some((a, p)) => (a, p),
        None => ("127.0.0.1", front),
    };
    let ip: IpAddr = match addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(v6) => v6.parse().map_err(|_| usage())?,
        None => addr
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| format!("'{addr}' is not an IPv4 address (write IPv6 as [::1])"))?,
    };
    if ip.is_multicast() {
        return Err(format!("{ip} is a multicast address, not one to listen on"));
    }
    Ok(Publish {
        host: SocketAddr::new(ip, port(host_port, "host port")?),
        port: port(inside, "port")?,
        proto,
    })
}

/// The same host address, port and protocol given twice.
pub fn check(published: &[Publish]) -> Result<()> {
    for (i, p) in published.iter().enumerate() {
        if published[..i]
            .iter()
            .any(|q| q.host == p.host && q.proto == p.proto)
        {
            return Err(fail(format!(
                "--publish {p}: {} {} is published twice",
                p.proto.label(),
                p.host
            )));
        }
    }
    Ok(())
}

/// A published port with its host socket, bound (and a TCP one listening).
#[derive(Debug)]
pub struct Bound {
    pub spec: Publish,
    pub sock: OwnedFd,
}

/// Bind every published port on the host, before anything is mounted: one
/// line (exit 125) for a port another program holds or an address this
/// host does not have.
pub fn bind(published: &[Publish]) -> Result<Vec<Bound>> {
    published
        .iter()
        .map(|p| {
            let sock: std::io::Result<OwnedFd> = match p.proto {
                Proto::Tcp => TcpListener::bind(p.host).map(OwnedFd::from),
                Proto::Udp => UdpSocket::bind(p.host).map(OwnedFd::from),
            };
            sock.map(|sock| Bound { spec: *p, sock })
                .map_err(|e| fail(bind_error(p, &e)))
        })
        .collect()
}

fn bind_error(p: &Publish, e: &std::io::Error) -> String {
    let what = format!("--publish {p}: the host's {} {}", p.proto.label(), p.host);
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "{what} is taken by another program: choose another host port (ss -{}lnp shows who holds it)",
            if p.proto == Proto::Tcp { 't' } else { 'u' }
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{what} cannot be bound: {} is not an address of this host",
            p.host.ip()
        ),
        _ => format!("{what} cannot be bound: {}", crate::error::io_reason(e)),
    }
}

/// What was published, in words, for `-v`.
pub fn describe(published: &[Publish]) -> String {
    let each: Vec<String> = published
        .iter()
        .map(|p| format!("{} to port {}", p.host, p.port))
        .collect();
    format!(
        "relaying the host's {} into the firmware's network",
        each.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = parse("8080:80").unwrap();
        assert_eq!(p.host, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((p.port, p.proto), (80, Proto::Tcp));
        let p = parse("0.0.0.0:5353:53/udp").unwrap();
        assert_eq!(p.host, "0.0.0.0:5353".parse().unwrap());
        assert_eq!((p.port, p.proto), (53, Proto::Udp));
        let p = parse("[::1]:2222:22/tcp").unwrap();
        assert_eq!(p.host, "[::1]:2222".parse().unwrap());
        assert_eq!(p.to_string(), "[::1]:2222:22/tcp");
        assert_eq!(
            parse("8080:80").unwrap().to_string(),
            "127.0.0.1:8080:80/tcp"
        );
        for bad in [
            "80",
            "8080:80/sctp",
            "0:80",
            "8080:0",
            "8080:65536",
            "x:8080:80",
            "::1:8080:80",
            "[x]:8080:80",
            "224.0.0.1:8080:80",
            "localhost:8080:80",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn the_same_host_port_twice_is_refused() {
        let a = parse("8080:80").unwrap();
        let b = parse("8080:81").unwrap();
        let u = parse("8080:80/udp").unwrap();
        assert!(check(&[a, u]).is_ok());
        assert!(check(&[a, b]).is_err());
    }
}
