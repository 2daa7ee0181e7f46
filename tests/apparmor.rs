//! The AppArmor profile on this host (whose kernel has no AppArmor): its
//! text, its syntax (apparmor_parser -QK works without the kernel), what
//! hostile input does to it, and how fwrun behaves without AppArmor.
//! The profile's effect is proven in the VM tier (tests/vm.rs).

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn print_profile(extra: &[&str]) -> common::Run {
    let mut args = vec!["--print-profile", "--name", "snapshot"];
    args.extend_from_slice(extra);
    run(&args)
}

/// The instance part of a profile name `fwrun-RUN-ID` in `text`: eight hex
/// digits, fresh for every invocation (--print-profile too).
fn instance_id<'a>(text: &'a str, run: &str) -> &'a str {
    let head = format!("profile fwrun-{run}-");
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("no {head:?} in:\n{text}"))
        + head.len();
    let id = &text[at..at + 8];
    assert!(
        id.bytes().all(|b| b.is_ascii_hexdigit()) && text[at + 8..].starts_with(' '),
        "not an instance id after {head:?}: {:?}",
        &text[at..]
    );
    id
}

/// The profile text with its instance id replaced by 00000000, so that
/// it can be compared with a snapshot.
fn fixed_id(text: &str, run: &str) -> String {
    let id = instance_id(text, run);
    text.replace(
        &format!("fwrun-{run}-{id}"),
        &format!("fwrun-{run}-00000000"),
    )
}

/// apparmor_parser's verdict on a profile text (-Q: no kernel, -K: no cache).
fn parser_accepts(text: &str) -> Result<(), String> {
    let s = Scratch::new("qk");
    let f = s.path("profile");
    fs::write(&f, text).unwrap();
    let out = Command::new("apparmor_parser")
        .args(["-QK"])
        .arg(&f)
        .output()
        .expect("apparmor_parser is missing: apt-get install apparmor");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rules of a profile: its non-comment, non-blank lines.
fn rules(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The profile printed with `extra` (instance id fixed) against the
/// snapshot in tests/snapshots/`file`.
fn assert_matches_snapshot(extra: &[&str], file: &str) {
    let r = print_profile(extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = fixed_id(&r.stdout, "snapshot");
    let snap = repo().join("tests/snapshots").join(file);
    if std::env::var_os("FWRUN_REGEN_SNAPSHOTS").is_some() {
        fs::write(&snap, &text).unwrap();
    }
    let want = fs::read_to_string(&snap).unwrap_or_default();
    assert!(
        text == want,
        "the profile for {extra:?} changed from tests/snapshots/{file}; if that is meant, run FWRUN_REGEN_SNAPSHOTS=1 cargo test --test apparmor and review the diff"
    );
}

#[test]
fn the_default_profile_matches_its_snapshot() {
    assert_matches_snapshot(&[], "default.profile");
    // --net none is the default: the same profile.
    assert_matches_snapshot(&["--net", "none"], "default.profile");
}

/// Under --net host the host's network is not the firmware's: net_admin is
/// denied and /proc/sys/net, /sys/class/net are no longer carved out of
/// the refused writes. Nothing else changes.
#[test]
fn the_host_network_profile_matches_its_snapshot() {
    assert_matches_snapshot(&["--net", "host"], "net-host.profile");
    let none = fixed_id(&print_profile(&[]).stdout, "snapshot");
    let host = fixed_id(&print_profile(&["--net", "host"]).stdout, "snapshot");
    assert!(rules(&host).contains(&"audit deny capability net_admin,"));
    assert!(!none.contains("net_admin"));
    let (none, host) = (rules(&none), rules(&host));
    let only_none: Vec<&&str> = none.iter().filter(|r| !host.contains(r)).collect();
    let only_host: Vec<&&str> = host.iter().filter(|r| !none.contains(r)).collect();
    for r in only_none.iter().chain(&only_host) {
        assert!(
            r.ends_with(" w,") || **r == "audit deny capability net_admin,",
            "--net host changed more than the network's rules: {r}"
        );
    }
    assert!(!only_host.is_empty() && !only_none.is_empty());
}

/// Two runs of the same name get two profiles: neither can replace or
/// unload the other's.
#[test]
fn every_invocation_names_its_own_profile() {
    let ids: std::collections::BTreeSet<String> = (0..5)
        .map(|_| {
            let r = print_profile(&[]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            instance_id(&r.stdout, "snapshot").to_string()
        })
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
}

#[test]
fn every_rendered_profile_passes_the_parser() {
    for extra in [
        &[][..],
        &["--deny", "/dev/ttyUSB*", "--deny", "/srv/data/**"],
        &["--deny", "/path with spaces/x"],
        &["--deny", "/a,b/{c,d}/[0-9]?*"],
        &["--deny", "/x # not a comment"],
        &["--allow-mknod"],
        &["--net", "host"],
        &["--net", "host", "--allow-mknod", "--deny", "/dev/ttyUSB*"],
    ] {
        let r = print_profile(extra);
        assert_eq!(r.code, 0, "{extra:?}: {}", r.stderr);
        parser_accepts(&r.stdout).unwrap_or_else(|e| panic!("{extra:?}: {e}\n{}", r.stdout));
    }
    let r = run(&["--print-profile", "--name", "a.b_c-1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    parser_accepts(&r.stdout).unwrap();
}

#[test]
fn hostile_deny_paths_cannot_add_rules() {
    let base = print_profile(&[]).stdout;
    let base_rules = rules(&base).len();
    // Accepted (quoted): exactly one more rule, naming the whole path.
    for path in [
        "/a b",
        "/x, /etc/shadow r",
        "/d/*/e/**",
        "/x # y",
        "/x {y,z} w",
    ] {
        let r = print_profile(&["--deny", path]);
        assert_eq!(r.code, 0, "{path:?}: {}", r.stderr);
        assert_eq!(rules(&r.stdout).len(), base_rules + 1, "{path:?}");
        assert!(
            r.stdout
                .contains(&format!("  audit deny \"{path}\" rwlkmx,\n")),
            "{path:?}:\n{}",
            r.stdout
        );
        parser_accepts(&r.stdout).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
    // Refused: what could end the quoted string or the line.
    for path in [
        "/a\"b",
        "/a\n  capability sys_module,",
        "/a\\",
        "relative",
        "/a\rb",
        "/x } profile y {",
        "/x {",
    ] {
        let r = print_profile(&["--deny", path]);
        assert_eq!(r.code, 125, "{path:?}: {}", r.stdout);
        assert_eq!(r.stdout, "", "{path:?}: nothing may be printed");
        assert_one_line_naming(&r, "--deny");
    }
    // A hostile run name never reaches the profile: names are validated.
    for name in ["x { file, }", "a\nb", "fwrun-x//y", "x\""] {
        let r = run(&["--print-profile", "--name", name]);
        assert_eq!(r.code, 125, "{name:?}");
        assert_eq!(r.stdout, "");
    }
}

#[test]
fn a_template_with_a_syntax_error_is_refused_before_anything_runs() {
    let s = Scratch::new("tpl");
    let t = s.path("bad.tera");
    fs::write(&t, "profile {{ profile }} {\n{% for x in %}\n}\n").unwrap();
    let r = run(&["--print-profile", "--profile-template", t.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, t.to_str().unwrap());
    let missing = s.path("missing.tera");
    let r = run(&[
        "--print-profile",
        "--profile-template",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, missing.to_str().unwrap());
    // A template of one's own renders with the same values.
    let good = s.path("good.tera");
    fs::write(&good, "abi <abi/3.0>,\nprofile {{ profile }} {\n  file,\n{% for r in deny %}  audit deny {{ r.path }} {{ r.access }},\n{% endfor %}}\n").unwrap();
    let r = run(&[
        "--print-profile",
        "--name",
        "own",
        "--profile-template",
        good.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("abi <abi/3.0>,\nprofile fwrun-own-"),
        "{}",
        r.stdout
    );
    instance_id(&r.stdout, "own");
    parser_accepts(&r.stdout).unwrap();
}

fn kernel_has_apparmor() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

#[test]
fn without_apparmor_require_refuses_auto_warns_once_off_is_silent() {
    let _g = guard();
    assert!(
        !kernel_has_apparmor(),
        "this test is about a kernel without AppArmor, and this one has it (the VM tier covers that case)"
    );
    let fw = image("fw.ext2");
    let fw = fw.to_str().unwrap();
    let r = run(&["--apparmor", "require", "--firmware", fw, "--", "/bin/true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_one_line_naming(&r, "--apparmor require: this kernel has no AppArmor");

    let r = run(&["--firmware", fw, "--", "/bin/true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(warnings[0].contains("no AppArmor"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);

    let r = run(&["--apparmor", "off", "--firmware", fw, "--", "/bin/true"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

/// fwrun compiles its profiles with fwrun::confine::apparmor::LOAD_OPTIONS, for
/// speed: the binary policy must be the one the parser's defaults give.
#[test]
fn load_options_compile_the_same_policy() {
    let text = print_profile(&["--deny", "/dev/ttyUSB*"]).stdout;
    let s = Scratch::new("opt");
    let f = s.path("profile");
    fs::write(&f, &text).unwrap();
    let compile = |opts: &[&str]| {
        let out = Command::new("apparmor_parser")
            .args(["-QK", "-S"])
            .args(opts)
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.len() > 1000, "no binary policy came out");
        out.stdout
    };
    assert!(
        compile(&[]) == compile(fwrun::confine::apparmor::LOAD_OPTIONS),
        "the load options change the compiled policy"
    );
}
