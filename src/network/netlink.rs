//! The few rtnetlink requests fwrun makes, over one blocking socket:
//! look a link up, create a veth pair, change a link (flags, MTU, bridge,
//! namespace, name), delete a link, add an IPv4 address, list the IPv4
//! routes. The messages are built and parsed by `netlink-packet-route`;
//! the socket is `netlink-sys`'s plain one (no async runtime).
//!
//! A socket belongs to the network namespace it was opened in: every
//! request on it names links of that namespace.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

/// What fwrun needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_* flags, as `ip link` shows them.
    pub flags: u32,
    pub mtu: Option<u32>,
    /// The driver's kind (veth, bridge, tun, …); None for a physical device.
    pub kind: Option<String>,
}

/// An IPv4 route: its destination and table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub table: u32,
    pub oif: Option<u32>,
}

/// A change to a link; what is None stays as it is.
#[derive(Debug, Default)]
pub struct Change<'a> {
    /// New flags, and which of them to change.
    pub flags: Option<(u32, u32)>,
    pub mtu: Option<u32>,
    /// The bridge to enslave it to, by index.
    pub master: Option<u32>,
    /// Move it into the network namespace of this descriptor.
    pub netns: Option<BorrowedFd<'a>>,
    /// Its new name (with `netns`: its name in the new namespace).
    pub name: Option<&'a str>,
}

/// A route netlink socket in the namespace it was opened in.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// The requests' answers: what the kernel sent back before its ack.
type Answers = Vec<RouteNetlinkMessage>;

impl Rtnl {
    pub fn open() -> Result<Rtnl, Errno> {
        let sock = Socket::new(NETLINK_ROUTE).map_err(io_errno)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(io_errno)?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, Errno> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        self.one_link(msg)
    }

    /// The link with index `index`, if there is one.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Errno> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.one_link(msg)
    }

    fn one_link(&mut self, msg: LinkMessage) -> Result<Option<Link>, Errno> {
        match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_ACK) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(m) => Some(link_of(&m)),
                _ => None,
            })),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create the veth pair `host` (here, up, in `master` if given) and
    /// `peer`, made directly in the network namespace `peer_ns`, down.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: BorrowedFd,
        master: Option<u32>,
    ) -> Result<(), Errno> {
        let mut inner = LinkMessage::default();
        inner.attributes.push(LinkAttribute::IfName(peer.into()));
        inner
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host.into()));
        if let Some(m) = master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inner))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    pub fn set_link(&mut self, index: u32, change: &Change) -> Result<(), Errno> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some((flags, mask)) = change.flags {
            msg.header.flags = LinkFlags::from_bits_retain(flags);
            msg.header.change_mask = LinkFlags::from_bits_retain(mask);
        }
        let attrs = &mut msg.attributes;
        if let Some(fd) = change.netns {
            attrs.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        if let Some(name) = change.name {
            attrs.push(LinkAttribute::IfName(name.into()));
        }
        if let Some(mtu) = change.mtu {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(m) = change.master {
            attrs.push(LinkAttribute::Controller(m));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    pub fn del_link(&mut self, index: u32) -> Result<(), Errno> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// Delete the link named `name`.
    pub fn del_link_named(&mut self, name: &str) -> Result<(), Errno> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// `ip address add ADDR/PREFIX dev INDEX`.
    pub fn add_addr4(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), Errno> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// `ip address del ADDR/PREFIX dev INDEX`.
    pub fn del_addr4(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), Errno> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        self.request(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK)
            .map(drop)
    }

    /// Every IPv4 route, of every table.
    pub fn routes4(&mut self) -> Result<Vec<Route>, Errno> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewRoute(r) => Some(route_of(&r)),
                _ => None,
            })
            .collect())
    }

    /// Send one request; collect the answers until its ack (or, for a
    /// dump, its end).
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Answers, Errno> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0).map_err(io_errno)?;
        let mut answers = Vec::new();
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(io_errno)?;
            let mut at = 0;
            while at < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..n])
                    .map_err(|_| Errno::EPROTO)?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(c) => Err(Errno::from_raw(-c.get())),
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn link_of(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        flags: m.header.flags.bits(),
        mtu: None,
        kind: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(v) => link.mtu = Some(*v),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn route_of(m: &RouteMessage) -> Route {
    let mut r = Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: m.header.destination_prefix_length,
        table: u32::from(m.header.table),
        oif: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => r.dst = *d,
            RouteAttribute::Table(t) => r.table = *t,
            RouteAttribute::Oif(o) => r.oif = Some(*o),
            _ => {}
        }
    }
    r
}
