//! What is checked on the host before anything is made: the bridge of
//! `--net bridge:BR`, the interfaces of `--net-move`, and the address of
//! `--net veth:ADDR/PREFIX` against the host's routes.

use anyhow::{anyhow, Result};

use crate::error::fail;
use crate::network::netlink::{Route, Rtnl};
use crate::network::{lookup, rtnl, HostAddr, Move, Plan, HOST_PREFIX};
use crate::sys::errno_text;

/// Check, before anything is made, what the plan names on the host: the
/// bridge exists and is one, each interface to move exists and can move,
/// the address clashes with no route of the host.
pub fn check(plan: &Plan) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let mut nl = rtnl()?;
    if let Some(v) = &plan.veth {
        if let Some(br) = &v.bridge {
            match lookup(&mut nl, br)? {
                Some(l) if l.kind.as_deref() == Some("bridge") => {}
                Some(_) => return Err(fail(format!("--net bridge:{br}: {br} is not a bridge"))),
                None => {
                    return Err(fail(format!(
                        "--net bridge:{br}: there is no bridge {br} on the host: create it first (ip link add {br} type bridge)"
                    )))
                }
            }
        }
        if let Some(a) = v.addr {
            check_clash(&mut nl, a, &v.host)?;
        }
    }
    for m in &plan.moves {
        check_movable(&mut nl, m)?;
    }
    Ok(())
}

fn check_movable(nl: &mut Rtnl, m: &Move) -> Result<()> {
    let flag = format!("--net-move {}", m.host);
    let link = lookup(nl, &m.host)?.ok_or_else(|| {
        fail(format!(
            "{flag}: there is no interface {} on the host (ip link lists them)",
            m.host
        ))
    })?;
    if link.flags & libc::IFF_LOOPBACK as u32 != 0 {
        return Err(fail(format!("{flag}: the loopback interface cannot move")));
    }
    match link.kind.as_deref() {
        Some("bridge") => Err(fail(format!(
            "{flag}: a bridge cannot move to another network namespace: use --net bridge:{}",
            m.host
        ))),
        _ if m.host.starts_with(HOST_PREFIX) && link.kind.as_deref() == Some("veth") => Err(fail(
            format!("{flag}: {} is the host side of another run's veth", m.host),
        )),
        _ => Ok(()),
    }
}

/// The address must not share a network with a route the host has (other
/// than a default route): two interfaces for the same network would take
/// each other's traffic. A route over `own` (this run's host end, left by a
/// dead run of the same name, which the sweep deletes) does not count.
fn check_clash(nl: &mut Rtnl, a: HostAddr, own: &str) -> Result<()> {
    let routes = nl
        .routes4()
        .map_err(|e| anyhow!("listing the host's routes: {}", errno_text(e)))?;
    for r in clashing_routes(a, &routes) {
        let dev = r.oif.and_then(|i| nl.link_by_index(i).ok().flatten());
        if dev.as_ref().is_some_and(|l| l.name == own) {
            continue;
        }
        let dev = dev.map(|l| format!(" dev {}", l.name)).unwrap_or_default();
        return Err(fail(format!(
            "--net veth:{a} clashes with the host's route {}/{}{dev}: pick an address in a network the host does not use",
            r.dst, r.prefix
        )));
    }
    Ok(())
}

/// The routes of the main and local tables, other than default routes,
/// whose destination overlaps `a`'s network.
fn clashing_routes(a: HostAddr, routes: &[Route]) -> impl Iterator<Item = &Route> {
    const MAIN: u32 = libc::RT_TABLE_MAIN as u32;
    const LOCAL: u32 = libc::RT_TABLE_LOCAL as u32;
    routes
        .iter()
        .filter(|r| matches!(r.table, MAIN | LOCAL) && r.prefix > 0)
        .filter(move |r| a.overlaps(r.dst, r.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> HostAddr {
        crate::network::parse_host_addr(s).unwrap()
    }

    fn route(dst: &str, prefix: u8, table: u32) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            prefix,
            table,
            oif: Some(2),
        }
    }

    #[test]
    fn clashes_are_overlapping_networks_of_main_and_local() {
        let routes = [
            route("0.0.0.0", 0, 254),
            route("192.0.2.0", 24, 254),
            route("10.0.0.0", 8, 100),
            route("127.0.0.0", 8, 255),
        ];
        let clash = |s: &str| {
            clashing_routes(addr(s), &routes)
                .next()
                .map(|r| r.dst.to_string())
        };
        assert_eq!(
            clash("169.254.77.2/24"),
            None,
            "a default route is no clash"
        );
        assert_eq!(clash("192.0.2.9/24"), Some("192.0.2.0".into()));
        assert_eq!(clash("192.0.2.130/25"), Some("192.0.2.0".into()), "inside");
        assert_eq!(clash("192.0.3.1/16"), Some("192.0.2.0".into()), "around");
        assert_eq!(clash("192.0.3.1/24"), None, "next door");
        assert_eq!(clash("10.1.1.1/24"), None, "another table");
    }
}
