//! The firmware's network, as root: a veth the host reaches the firmware's
//! web page through, two firmwares on one bridge, a host interface moved in
//! and back, the sweep of a killed run's veth, and bad input.
//!
//! Traffic goes only to link-local addresses (169.254.0.0/16) on
//! interfaces these tests make (the veths fwrun makes for them, a bridge, a
//! tap), and each test checks with `ip route get` that the route to an
//! address goes over such an interface before it sends anything there.
//! What a test makes (bridge, tap) a guard deletes, also when it fails; the
//! common guard checks that no `fw-*` or `fwt*` interface is left, and
//! deletes a `fwt*` one an earlier, killed test binary left before a test
//! starts.
//!
//! Needs `ip` (iproute2) on the host; the firmware uses busybox's ip,
//! ping and httpd.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bg::*;
use common::*;

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (apt-get install iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(ifname: &str) -> bool {
    Path::new("/sys/class/net").join(ifname).exists()
}

fn sys_net(ifname: &str, attr: &str) -> String {
    fs::read_to_string(Path::new("/sys/class/net").join(ifname).join(attr))
        .unwrap_or_else(|e| panic!("/sys/class/net/{ifname}/{attr}: {e}"))
        .trim()
        .to_string()
}

/// Panics unless the route to `addr` goes over `dev`: nothing is sent to
/// an address whose packets could leave the machine.
fn assert_route_over(addr: &str, dev: &str) {
    let out = ip(&["route", "get", addr]);
    let via = out
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or("");
    assert_eq!(via, dev, "the route to {addr} is not over {dev}: {out}");
}

/// An HTTP GET of `/` at `addr`, port 80, with std's TCP (no proxy).
fn http_get(addr: &str) -> String {
    let sa: SocketAddr = format!("{addr}:80").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
                let mut body = String::new();
                s.read_to_string(&mut body).unwrap();
                return body;
            }
            Err(e) if Instant::now() > deadline => panic!("connecting to {sa}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Whether `addr` answers a ping within a few tries (busybox's ping).
fn ping(addr: &str) -> bool {
    (0..5).any(|_| {
        Command::new("busybox")
            .args(["ping", "-c", "1", "-W", "1", addr])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Wait until `cond` holds, or panic saying `what`.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An interface a test made, deleted when the test ends however it ends.
struct Made(&'static str);

impl Made {
    fn bridge(name: &'static str, addr: Option<&str>) -> Made {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        ip(&["link", "add", name, "type", "bridge"]);
        let made = Made(name);
        if let Some(a) = addr {
            ip(&["addr", "add", a, "dev", name]);
        }
        ip(&["link", "set", name, "up"]);
        made
    }

    fn tap(name: &'static str) -> Made {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        Made(name)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).output();
    }
}

// ---------------------------------------------------------------------------
// 1. --net veth: the host reaches the firmware's web page; ping both ways.

#[test]
fn the_host_gets_the_firmwares_page_through_the_veth_and_ping_goes_both_ways() {
    let _g = guard();
    let scratch = Scratch::new("net-veth");
    let report = scratch.path("report.json");
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "net-veth",
        "-v",
        "--report",
        report.to_str().unwrap(),
        "--net",
        "veth:169.254.77.2/24",
        "--",
        "/test/net.sh",
        "169.254.77.1/24",
        "169.254.77.2",
    ]);
    bg.expect("ready");
    // The firmware found its eth0 as a device boots: down, no address.
    for said in ["eth0 was down", "eth0 had no address"] {
        assert!(bg.seen.iter().any(|l| l == said), "{:?}", bg.seen);
    }
    let host = "fw-net-veth";
    assert!(
        u32::from_str_radix(sys_net(host, "flags").trim_start_matches("0x"), 16).unwrap()
            & libc::IFF_UP as u32
            != 0,
        "{host} is not up"
    );
    assert!(ip(&["-4", "addr", "show", "dev", host]).contains("inet 169.254.77.2/24"));
    assert_route_over("169.254.77.1", host);
    let page = http_get("169.254.77.1");
    assert!(
        page.starts_with("HTTP/1.") && page.contains("page of net-veth"),
        "{page}"
    );
    assert!(ping("169.254.77.1"), "the host could not ping the firmware");
    bg.expect("done");
    assert!(
        bg.seen.iter().any(|l| l == "reached 169.254.77.2"),
        "the firmware could not ping the host: {:?}",
        bg.seen
    );
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(
        out.stderr.contains(
            "gave the firmware eth0, one end of a veth pair whose host end fw-net-veth is up with 169.254.77.2/24"
        ),
        "{}",
        out.show()
    );
    let rep: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["network"]["mode"], "veth");
    assert_eq!(
        rep["network"]["interfaces"],
        serde_json::json!([{
            "name": "eth0", "kind": "veth", "host_name": "fw-net-veth",
            "host_address": "169.254.77.2/24", "bridge": null
        }])
    );
    // The guard waits for the host's end to go (the kernel deletes it with
    // the firmware's namespace).
}

// ---------------------------------------------------------------------------
// 2. --net bridge:BR: two firmwares and the host on one segment.

#[test]
fn two_firmwares_on_one_bridge_reach_each_other_and_the_host_reaches_both() {
    let _g = guard();
    let br = Made::bridge("fwtestbr0", Some("169.254.78.254/24"));
    let start = |name: &str, own: &str, peer: &str| {
        Bg::start(&[
            "--firmware",
            &fw(),
            "--name",
            name,
            "--net",
            &format!("bridge:{}", br.0),
            "--",
            "/test/net.sh",
            own,
            peer,
            "169.254.78.254",
        ])
    };
    let mut a = start("net-br-a", "169.254.78.1/24", "169.254.78.2");
    let mut b = start("net-br-b", "169.254.78.2/24", "169.254.78.1");
    a.expect("ready");
    b.expect("ready");
    for end in ["fw-net-br-a", "fw-net-br-b"] {
        let master = fs::read_link(format!("/sys/class/net/{end}/master")).unwrap();
        assert!(master.ends_with(br.0), "{end} is in {master:?}");
    }
    for (addr, name) in [("169.254.78.1", "net-br-a"), ("169.254.78.2", "net-br-b")] {
        assert_route_over(addr, br.0);
        assert!(ping(addr), "the host could not ping {name}");
        assert!(http_get(addr).contains(&format!("page of {name}")));
    }
    a.expect("done");
    b.expect("done");
    for (bg, peer) in [(&a, "169.254.78.2"), (&b, "169.254.78.1")] {
        for target in [peer, "169.254.78.254"] {
            assert!(
                bg.seen.contains(&format!("reached {target}")),
                "{:?}",
                bg.seen
            );
        }
    }
    for bg in [a, b] {
        bg.signal(libc::SIGTERM);
        let out = bg.finish();
        assert_eq!(out.code(), Some(143), "{}", out.show());
    }
}

// ---------------------------------------------------------------------------
// 3. --net-move: a tap goes in under a new name and comes back as it was.

#[test]
fn a_moved_tap_is_inside_under_its_new_name_and_comes_back_as_it_was() {
    let _g = guard();
    let tap = Made::tap("fwttap0");
    ip(&[
        "link", "set", tap.0, "mtu", "1400", "promisc", "on", "arp", "off", "up",
    ]);
    let (flags, mtu) = (sys_net(tap.0, "flags"), sys_net(tap.0, "mtu"));
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "net-move",
        "--net-move",
        "fwttap0:lan1",
        "--",
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; ip link show lan1; ip link show fwttap0 || echo no fwttap0; \
         echo ready; while :; do sleep 1 & wait $!; done",
    ]);
    bg.expect("ready");
    assert!(!exists(tap.0), "{} is still on the host", tap.0);
    let shown = bg.seen.join("\n");
    assert!(
        shown.contains(": lan1: ") && shown.contains("mtu 1400") && shown.contains("no fwttap0"),
        "{shown}"
    );
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(exists(tap.0), "{} did not come back", tap.0);
    assert_eq!(
        (sys_net(tap.0, "flags"), sys_net(tap.0, "mtu")),
        (flags, mtu),
        "flags and MTU"
    );
    assert!(!exists("lan1"), "the host has a lan1");
}

// ---------------------------------------------------------------------------
// 4. A run killed with SIGKILL: its veth's host end is swept.

/// Start a veth run, hold its network namespace (as a user's `nsenter`
/// would, so that the kernel does not delete the veth with it), and kill
/// fwrun. Returns the namespace's descriptor.
fn kill_a_veth_run(name: &str) -> fs::File {
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        name,
        "--net",
        "veth:169.254.77.2/24",
        "--",
        "/test/signals.sh",
    ]);
    bg.expect("ready");
    let pid = bg.pid();
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let init = children.split_whitespace().next().expect("fwrun's child");
    let ns = fs::File::open(format!("/proc/{init}/ns/net")).unwrap();
    bg.signal(libc::SIGKILL);
    let out = bg.finish();
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{}", out.show());
    ns
}

#[test]
fn cleanup_deletes_the_veth_of_a_killed_run() {
    let _g = guard();
    let ns = kill_a_veth_run("net-kill");
    let host = "fw-net-kill";
    assert!(exists(host), "{host} went with its namespace held");
    let out = finish({
        let mut c = fwrun();
        c.arg("--cleanup");
        c
    });
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert!(
        out.stderr
            .contains("removed the leftovers of dead run net-kill"),
        "{}",
        out.show()
    );
    assert!(!exists(host), "--cleanup left {host}");
    drop(ns);
}

#[test]
fn the_next_run_of_the_name_deletes_the_veth_of_a_killed_run() {
    let _g = guard();
    let ns = kill_a_veth_run("net-kill2");
    assert!(exists("fw-net-kill2"));
    // Same name, same address: the leftover is swept first, so neither
    // its name nor its route is in the way.
    let out = finish({
        let mut c = fwrun();
        c.args([
            "--firmware",
            &fw(),
            "--name",
            "net-kill2",
            "--net",
            "veth:169.254.77.2/24",
            "--",
            "/bin/sh",
            "-c",
            "ip link show eth0 >/dev/null && echo has eth0",
        ]);
        c
    });
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "has eth0\n"),
        "{}",
        out.show()
    );
    drop(ns);
}

#[test]
fn runs_in_a_row_with_one_name_and_address_do_not_trip_over_each_other() {
    let _g = guard();
    for i in 0..5 {
        let out = finish({
            let mut c = fwrun();
            c.args([
                "--firmware",
                &fw(),
                "--name",
                "net-row",
                "--net",
                "veth:169.254.77.2/24",
                "--",
                "/bin/true",
            ]);
            c
        });
        assert_eq!(out.code(), Some(0), "run {i}: {}", out.show());
    }
    wait_for("fw-net-row is still there", || !exists("fw-net-row"));
}

// ---------------------------------------------------------------------------
// 5. Bad input: 125, one line naming it, nothing made (the guard).

fn refused(args: &[&str], says: &str) {
    let mut c = fwrun();
    c.args(["--firmware", &fw(), "--name", "net-bad"])
        .args(args)
        .args(["--", "/bin/true"]);
    let out = finish(c);
    let lines = out.errors();
    assert_eq!(out.code(), Some(125), "{args:?}: {}", out.show());
    assert!(
        lines.len() == 1 && lines[0].starts_with("fwrun: ") && lines[0].contains(says),
        "{args:?}: expected one line saying {says:?}: {}",
        out.show()
    );
    assert!(!Path::new("/run/fwrun/net-bad").exists());
}

#[test]
fn bad_network_input_is_refused_before_anything_is_made() {
    let _g = guard();
    let _clash = Made::bridge("fwtclash0", Some("169.254.79.1/24"));
    let long = "abcdefghijklmnop";
    for (args, says) in [
        (
            &["--net-move", "fwt-nosuch0"][..],
            "no interface fwt-nosuch0",
        ),
        (&["--net-move", "lo:lan9"], "loopback"),
        (&["--net", "veth:169.254.77.0/24"], "first or last address"),
        (&["--net", "veth:169.254.277.2/24"], "not an IPv4 address"),
        (&["--net", "veth:169.254.77.2"], "no prefix length"),
        (
            &["--net", "veth:169.254.79.9/24"],
            "clashes with the host's route 169.254.79.0/24 dev fwtclash0",
        ),
        (&["--net", "bridge:fwt-nobr0"], "no bridge fwt-nobr0"),
        (&["--net", "bridge:lo"], "lo is not a bridge"),
        (&["--net", "veth", "--veth-name", long], "15 bytes"),
        (&["--net-move", &format!("lo:{long}")], "15 bytes"),
        (&["--net", &format!("bridge:{long}")], "15 bytes"),
        (&["--net", "host", "--net-move", "lo"], "--net host"),
    ] {
        refused(args, says);
        assert!(!exists("fw-net-bad"), "{args:?}");
    }
}

// ---------------------------------------------------------------------------
// 6. The README's example, on link-local addresses.

/// The README's "## Network" section: its code blocks, in order.
fn readme_network_blocks() -> Vec<String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Network\n")
        .nth(1)
        .expect("README.md has a '## Network' section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_start_matches('\n').to_string())
        .collect()
}

/// The README's own addresses, 192.168.1.x, moved to the link-local
/// 169.254.77.x these tests use.
fn link_local(s: &str) -> String {
    s.replace("192.168.1.", "169.254.77.")
}

#[test]
fn the_readmes_network_example_works_on_link_local_addresses() {
    let _g = guard();
    let blocks = readme_network_blocks();
    let [rcs, commands] = &blocks[..] else {
        panic!("expected the rcS and the commands: {blocks:?}")
    };
    let rcs: Vec<String> = rcs
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(link_local)
        .collect();
    let fwrun_line = commands
        .lines()
        .find(|l| l.starts_with("sudo fwrun "))
        .expect("a fwrun command");
    let words: Vec<&str> = fwrun_line.split_whitespace().collect();
    let net = words
        .iter()
        .position(|w| *w == "--net")
        .map(|i| link_local(words[i + 1]))
        .expect("--net in the README's command");
    let url = commands
        .lines()
        .find_map(|l| l.strip_prefix("curl "))
        .map(|u| link_local(u.trim()))
        .expect("a curl command");
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    assert!(host.starts_with("169.254."), "{host}");
    // The firmware's rcS as the README gives it, after a page to serve.
    let script = format!(
        "trap 'exit 0' TERM; mkdir -p /www; echo 'the README page' > /www/index.html; {}; \
         echo ready; while :; do sleep 1 & wait $!; done",
        rcs.join("; ")
    );
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "net-readme",
        "--net",
        &net,
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    bg.expect("ready");
    assert_route_over(&host, "fw-net-readme");
    let page = http_get(&host);
    assert!(page.contains("the README page"), "{page}");
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
}

// ---------------------------------------------------------------------------
// 7. Each boot of --on-reboot restart gets its links anew.

#[test]
fn every_boot_gets_its_veth_and_moved_interface() {
    let _g = guard();
    let tap = Made::tap("fwttap1");
    let out = finish({
        let mut c = fwrun();
        c.args([
            "--firmware",
            &fw(),
            "--name",
            "net-reboot",
            "--on-reboot",
            "restart",
            "--net",
            "veth:169.254.77.2/24",
            "--net-move",
            "fwttap1:lan1",
            "--",
            "/bin/sh",
            "-c",
            "ip link show eth0 >/dev/null && ip link show lan1 >/dev/null && echo both; \
             [ -e /var/first ] && exit 0; touch /var/first; reboot -f",
        ]);
        c
    });
    assert_eq!(
        (out.code(), out.stdout.as_str()),
        (Some(0), "both\nboth\n"),
        "{}",
        out.show()
    );
    assert!(exists(tap.0), "{} did not come back", tap.0);
}
