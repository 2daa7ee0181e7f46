//! `--publish`, as root: the firmware's port reached from the host's
//! 127.0.0.1 with `--net none` (only `lo` inside), `--net veth` and `--net
//! host`; UDP datagrams both ways; fifty connections at once; connections
//! closed when the firmware stops, fwrun on time; a reboot; `--ready-when tcp:PORT`
//! tried from inside the firmware's network; a SIGKILL of fwrun and
//! `--cleanup`; a host port already taken.
//!
//! Traffic goes only to 127.0.0.1 (the host's sockets fwrun binds; inside,
//! the relay reaches the firmware's own loopback). After every test the
//! common guard finds no mount, state, process (the relay is a fwrun
//! process) or interface left, and each test checks that nothing listens
//! on its port any more.
//!
//! Needs curl and ss (iproute2) on the host.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::bg::{finish, Bg, Out};
use common::*;
use serde_json::{json, Value};

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

fn fwrun_out(args: &[&str]) -> Out {
    let mut c = fwrun();
    c.args(args);
    finish(c)
}

/// A port of 127.0.0.1 that nothing holds now, for TCP (or UDP).
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// What `ss` lists as listening on `port` of the host (`-t` or `-u`).
fn listeners(port: u16, udp: bool) -> String {
    let out = Command::new("ss")
        .args([if udp { "-Hlunp" } else { "-Hltnp" }])
        .arg(format!("sport = :{port}"))
        .output()
        .expect("running ss (apt-get install iproute2)");
    assert!(out.status.success(), "ss failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[track_caller]
fn assert_nothing_listens(port: u16, udp: bool) {
    eventually(&format!("nothing listens on port {port}"), 5, || {
        listeners(port, udp).is_empty()
    });
}

/// A run of the service init (it stays up), ready once its console says
/// the login prompt unless `extra` names a --ready-when.
fn service(name: &str, extra: &[String]) -> Bg {
    let mut args: Vec<String> = vec!["--firmware".into(), fw(), "--name".into(), name.into()];
    args.extend(extra.iter().cloned());
    if !extra.iter().any(|a| a == "--ready-when") {
        args.extend(["--ready-when".into(), "console:fwtest login:".into()]);
    }
    args.extend(["--".into(), "/test/service.sh".into()]);
    Bg::start(&args)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// service.sh serving httpd on its port 80, published at the host's
/// 127.0.0.1:`port`, once it is ready (a connection to port 80 inside).
fn httpd(name: &str, port: u16) -> Bg {
    let bg = service(
        name,
        &strings(&[
            "-p",
            &format!("{port}:80"),
            "--env",
            "HTTPD=80",
            "--ready-when",
            "tcp:80",
        ]),
    );
    wait_ready(name);
    bg
}

fn wait_ready(name: &str) {
    let o = fwrun_out(&["wait", name, "--timeout", "30s"]);
    assert_eq!(o.code(), Some(0), "fwrun wait {name}: {}", o.show());
}

/// `curl` of 127.0.0.1:PORT/PATH (no proxy): its output, or a panic.
fn curl(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["--noproxy", "*", "-sS", "-m", "10"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("running curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl 127.0.0.1:{port}{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stop a run with SIGTERM; its output (it exits 143).
fn stop(bg: Bg) -> Out {
    bg.signal(libc::SIGTERM);
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    out
}

/// `fwrun list --json`'s entry of run `name`.
fn listed(name: &str) -> Value {
    let o = fwrun_out(&["list", "--json"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    let runs: Value = serde_json::from_str(&o.stdout).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {}", o.stdout))
        .clone()
}

/// An HTTP request whose end has not come yet: the connection stays open
/// in the firmware's httpd, which waits for the rest.
fn half_request(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n").unwrap();
    s
}

/// Whether the connection is closed (end of file or reset) within `secs`.
fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) => panic!("reading the open connection: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. --net none: only lo inside, the page on the host's port.

#[test]
fn a_firmware_with_only_lo_serves_its_page_on_the_published_port() {
    let _g = guard();
    let s = Scratch::new("pub-none");
    let rep = s.path("r.json");
    let port = free_port(false);
    let bg = service(
        "pub-none",
        &strings(&[
            "--net",
            "none",
            "--publish",
            &format!("127.0.0.1:{port}:80"),
            "--env",
            "HTTPD=127.0.0.1:80",
            "--ready-when",
            "tcp:80",
            "--report",
            rep.to_str().unwrap(),
        ]),
    );
    wait_ready("pub-none");
    // fwrun holds the host's port; the page comes from inside.
    assert!(
        listeners(port, false).contains("fwrun"),
        "{}",
        listeners(port, false)
    );
    let page = curl(port, "/");
    assert_eq!(page.trim(), "fwtest is up");
    let entry = listed("pub-none");
    let want =
        json!([{"host_address": "127.0.0.1", "host_port": port, "port": 80, "protocol": "tcp"}]);
    assert_eq!(entry["network"]["published"], want, "{entry}");
    let table = fwrun_out(&["list"]);
    assert!(
        table
            .stdout
            .contains(&format!("none 127.0.0.1:{port}->80/tcp")),
        "{}",
        table.stdout
    );
    let out = stop(bg);
    assert!(
        out.stderr.contains("firmware ready after "),
        "{}",
        out.show()
    );
    assert_nothing_listens(port, false);
    let report = common::report::read_report(&rep);
    assert_eq!(report["network"]["published"], want);
    assert_eq!(report["network"]["mode"], "none");
    assert!(common::report::schema_errors(&report).is_empty());
}

// ---------------------------------------------------------------------------
// 2. --net veth: the same page through the relay, whatever the firmware
//    made of its eth0.

#[test]
fn a_firmware_with_a_veth_serves_its_page_on_the_published_port() {
    let _g = guard();
    let port = free_port(false);
    let mut bg = Bg::start(&[
        "--firmware",
        &fw(),
        "--name",
        "pub-veth",
        "--net",
        "veth:169.254.83.2/30",
        "-p",
        &format!("{port}:80"),
        "--",
        "/test/net.sh",
        "169.254.83.1/30",
    ]);
    bg.expect("ready");
    let page = curl(port, "/");
    assert_eq!(page.trim(), "page of pub-veth");
    assert_eq!(
        listed("pub-veth")["network"]["published"][0]["host_port"],
        port
    );
    stop(bg);
    assert_nothing_listens(port, false);
}

// ---------------------------------------------------------------------------
// 3. A server bound to another address than 127.0.0.1 (as a device's web
//    server on its LAN address only), and --net host.

#[test]
fn a_server_on_another_address_and_the_hosts_network_are_reached_too() {
    let _g = guard();
    let port = free_port(false);
    let bg = service(
        "pub-addr",
        &strings(&[
            "--publish",
            &format!("{port}:80"),
            "--env",
            "HTTPD=127.0.0.2:80",
            "--ready-when",
            "tcp:127.0.0.2:80",
        ]),
    );
    wait_ready("pub-addr");
    assert_eq!(curl(port, "/").trim(), "fwtest is up");
    stop(bg);
    assert_nothing_listens(port, false);

    // --net host: the firmware's port is one of the host's loopback.
    let inner = free_port(false);
    let port = free_port(false);
    let bg = service(
        "pub-host",
        &strings(&[
            "--net",
            "host",
            "--publish",
            &format!("{port}:{inner}"),
            "--env",
            &format!("HTTPD=127.0.0.1:{inner}"),
            "--ready-when",
            &format!("tcp:{inner}"),
        ]),
    );
    wait_ready("pub-host");
    assert_eq!(curl(port, "/").trim(), "fwtest is up");
    stop(bg);
    assert_nothing_listens(port, false);
    assert_nothing_listens(inner, false);
}

// ---------------------------------------------------------------------------
// 4. UDP: each client's datagrams answered to that client.

#[test]
fn udp_datagrams_reach_the_firmware_and_each_client_gets_its_answers() {
    let _g = guard();
    let port = free_port(true);
    let mut bg = service(
        "pub-udp",
        &strings(&[
            "--publish",
            &format!("127.0.0.1:{port}:7/udp"),
            "--env",
            "UDPECHO=7",
        ]),
    );
    bg.expect("fwtest: udp echo on 7");
    wait_ready("pub-udp");
    assert!(
        listeners(port, true).contains("fwrun"),
        "{}",
        listeners(port, true)
    );
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            c
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        // The echo may still be starting: asked again until a deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = format!("echo: hello from {i}");
        let mut buf = [0u8; 256];
        loop {
            c.send(format!("hello from {i}").as_bytes()).unwrap();
            match c.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(String::from_utf8_lossy(&buf[..n]), want);
                    break;
                }
                Err(_) => assert!(Instant::now() < deadline, "no answer to client {i}"),
            }
        }
    }
    // A second datagram of the same flow, a large one.
    let big = vec![b'x'; 8000];
    clients[1].send(&big).unwrap();
    let mut buf = vec![0u8; 9000];
    clients[1]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = clients[1].recv(&mut buf).unwrap();
    assert_eq!(n, 8006);
    assert_eq!(&buf[6..n], &big[..]);
    stop(bg);
    assert_nothing_listens(port, true);
}

// ---------------------------------------------------------------------------
// 5. Fifty connections at once.

#[test]
fn fifty_connections_at_once_are_all_answered() {
    let _g = guard();
    let port = free_port(false);
    let bg = httpd("pub-fifty", port);
    const N: usize = 50;
    let all_open = Arc::new(Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let all_open = all_open.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                // Every connection is open before any asks.
                all_open.wait();
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut page = String::new();
                s.read_to_string(&mut page).unwrap();
                page
            })
        })
        .collect();
    let pages: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let answered = pages
        .iter()
        .filter(|p| p.starts_with("HTTP/1.") && p.contains("fwtest is up"))
        .count();
    assert_eq!(answered, N, "{pages:?}");
    stop(bg);
    assert_nothing_listens(port, false);
}

// ---------------------------------------------------------------------------
// 6. A connection open when the firmware stops is closed; fwrun on time.

#[test]
fn an_open_connection_is_closed_when_the_firmware_stops_and_fwrun_ends_on_time() {
    let _g = guard();
    let port = free_port(false);
    let bg = httpd("pub-stop", port);
    let mut open = half_request(port);
    // The connection reached the firmware's httpd, which waits for more.
    assert!(!closed_within(&mut open, 1), "closed before the stop");
    let t = Instant::now();
    bg.signal(libc::SIGTERM);
    assert!(closed_within(&mut open, 5), "still open 5 s after the stop");
    let out = bg.finish();
    assert_eq!(out.code(), Some(143), "{}", out.show());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "fwrun took {:?} to end",
        t.elapsed()
    );
    assert_nothing_listens(port, false);
}

// ---------------------------------------------------------------------------
// 7. --ready-when tcp:PORT with --net none: tried from inside.

#[test]
fn tcp_readiness_with_only_lo_waits_for_the_listener_and_times_out_without_one() {
    let _g = guard();
    // Nothing listens on 80 until the test starts httpd inside.
    let mut bg = service("pub-ready", &strings(&["--ready-when", "tcp:80"]));
    // Its rcS is done: booting it stays, for as long as the test looks.
    bg.expect("demo firmware: network interfaces: lo ");
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        assert_eq!(listed("pub-ready")["state"], "booting");
    }
    let o = fwrun_out(&[
        "enter",
        "pub-ready",
        "--",
        "httpd",
        "-p",
        "127.0.0.1:80",
        "-h",
        "/tmp",
    ]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    wait_ready("pub-ready");
    assert_eq!(listed("pub-ready")["state"], "ready");
    let out = stop(bg);
    assert!(
        out.stderr.contains("firmware ready after "),
        "{}",
        out.show()
    );

    // Never a listener: 124 after --ready-timeout.
    let t = Instant::now();
    let o = fwrun_out(&[
        "--firmware",
        &fw(),
        "--env",
        "HTTPD=127.0.0.1:80",
        "--ready-when",
        "tcp:81",
        "--ready-timeout",
        "2s",
        "--",
        "/test/service.sh",
    ]);
    assert_eq!(o.code(), Some(124), "{}", o.show());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert!(
        o.stderr.contains("not ready within --ready-timeout"),
        "{}",
        o.show()
    );
}

// ---------------------------------------------------------------------------
// 8. A SIGKILL of fwrun: its port, its relay and its connections go with
//    it; --cleanup clears the rest.

#[test]
fn a_sigkill_of_fwrun_takes_the_listener_and_the_relay_with_it() {
    let _g = guard();
    let port = free_port(false);
    let bg = httpd("pub-kill", port);
    let mut open = half_request(port);
    assert!(!closed_within(&mut open, 1), "closed before the kill");
    // fwrun and its relay hold the port.
    let holders = listeners(port, false);
    let pids: BTreeSet<&str> = holders
        .split("pid=")
        .skip(1)
        .filter_map(|p| p.split(',').next())
        .collect();
    assert_eq!(pids.len(), 2, "{holders}");
    let relay: Vec<String> = pids
        .iter()
        .filter(|p| **p != bg.pid().to_string())
        .map(|p| p.to_string())
        .collect();
    assert_eq!(relay.len(), 1, "{holders}");
    bg.signal(libc::SIGKILL);
    assert!(closed_within(&mut open, 5), "still open 5 s after the kill");
    assert_nothing_listens(port, false);
    eventually("the relay is gone", 5, || {
        fs::read_to_string(format!("/proc/{}/stat", relay[0]))
            .map_or(true, |st| st.contains(") Z "))
    });
    let out = bg.finish();
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{}", out.show());
    let r = run(&["--cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("removed the leftovers of dead run pub-kill"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// 9. Bad input: a host port another program holds, a bad spec.

#[test]
fn a_taken_host_port_is_one_line_and_125_before_anything_starts() {
    let _g = guard();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let r = run(&[
        "--firmware",
        &fw(),
        "--publish",
        &format!("{port}:80"),
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, &format!("127.0.0.1:{port} is taken"));
    drop(taken);

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let r = run(&[
        "--firmware",
        &fw(),
        "--publish",
        &format!("127.0.0.1:{port}:53/udp"),
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, &format!("udp 127.0.0.1:{port} is taken"));

    for bad in ["80", "8080:80/sctp", "localhost:8080:80", "8080:0"] {
        let r = run(&["--firmware", &fw(), "--publish", bad, "--", "/bin/true"]);
        assert_eq!(r.code, 125, "--publish {bad}: {}", r.stderr);
        assert!(r.stderr.contains("--publish"), "{}", r.stderr);
    }
    let r = run(&[
        "--firmware",
        &fw(),
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8080:81",
        "--",
        "/bin/true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "published twice");
}

// ---------------------------------------------------------------------------
// 10. README's three lines, on the test firmware.

#[test]
fn the_readmes_three_lines_reach_the_page() {
    let _g = guard();
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Reaching the web UI in three lines")
        .nth(1)
        .expect("README.md has a 'Reaching the web UI in three lines' section");
    let block = section.split("```").nth(1).unwrap().trim();
    assert_eq!(block.lines().count(), 3, "{block}");
    let port = free_port(false);
    let script = block
        .replace("router.ext4", &fw())
        .replace(
            "-- /sbin/init &",
            "--env HTTPD=80 -- /test/service.sh >/dev/null 2>&1 &",
        )
        .replace("8080", &port.to_string())
        .replace("sudo fwrun", env!("CARGO_BIN_EXE_fwrun"))
        .replace("curl ", "curl --noproxy '*' -sS -m 10 ");
    assert!(
        script.contains(&fw()) && script.contains("--noproxy"),
        "{script}"
    );
    // The run the script starts in the background is stopped below, or
    // killed by this guard if the test fails before.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = fwrun_out(&["stop", "r1", "--kill"]);
        }
    }
    let stop = Stop;
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(format!("{script}\necho \"curl=$?\""));
    let out = finish(sh);
    assert!(
        out.stdout.contains("fwtest is up") && out.stdout.contains("curl=0"),
        "{}",
        out.show()
    );
    std::mem::forget(stop);
    let o = fwrun_out(&["stop", "r1"]);
    assert_eq!(o.code(), Some(0), "{}", o.show());
    assert_nothing_listens(port, false);
}

// ---------------------------------------------------------------------------
// 11. A reboot under --on-reboot restart: the next boot, in a network
//     namespace of its own, is reached on the same host port.

#[test]
fn the_published_port_reaches_the_firmware_again_after_a_reboot() {
    let _g = guard();
    let s = Scratch::new("pub-reboot");
    let rep = s.path("r.json");
    let port = free_port(false);
    let bg = service(
        "pub-reboot",
        &strings(&[
            "--on-reboot",
            "restart",
            "-p",
            &format!("{port}:80"),
            "--env",
            "HTTPD=80",
            "--ready-when",
            "tcp:80",
            "--report",
            rep.to_str().unwrap(),
        ]),
    );
    wait_ready("pub-reboot");
    assert_eq!(curl(port, "/").trim(), "fwtest is up");
    let mut open = half_request(port);
    assert!(!closed_within(&mut open, 1), "closed before the reboot");
    let first = listed("pub-reboot")["pid"].clone();
    let o = fwrun_out(&["enter", "pub-reboot", "--", "reboot", "-f"]);
    assert!(o.code().is_some(), "{}", o.show());
    // The first boot's connection went with it.
    assert!(
        closed_within(&mut open, 5),
        "still open 5 s after the reboot"
    );
    eventually("the second boot", 10, || {
        let now = listed("pub-reboot");
        now["pid"] != first && now["state"] == "ready"
    });
    assert_eq!(curl(port, "/").trim(), "fwtest is up");
    stop(bg);
    assert_nothing_listens(port, false);
    assert_eq!(common::report::read_report(&rep)["boots"], 2);
}
