//! --changes and --report: what a user or a CI job reads after a run. Every
//! report is checked against schemas/report.schema.json.

mod common;

use common::bg::*;
use common::*;
use serde_json::Value;

fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    v.iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn read_report(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the report was written");
    let v: Value = serde_json::from_str(&text).expect("the report is JSON");
    let errs = schema_errors(&v);
    assert!(
        errs.is_empty(),
        "the report breaks the schema: {errs:#?}\n{text}"
    );
    v
}

fn fw() -> String {
    image("fw.ext2").to_str().unwrap().to_string()
}

#[test]
fn a_normal_run_and_a_failing_init() {
    let _g = guard();
    let s = Scratch::new("report");
    let out = s.path("r.json");
    let out_s = out.to_str().unwrap();
    let r = run(&[
        "--report",
        out_s,
        "--name",
        "rep1",
        "--firmware",
        &fw(),
        "--",
        "/test/exit.sh",
        "0",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = read_report(&out);
    assert_eq!(v["name"], "rep1");
    assert_eq!(v["firmware"]["kind"], "ext2");
    assert_eq!(v["init"], serde_json::json!(["/test/exit.sh", "0"]));
    assert_eq!(v["ending"]["kind"], "exited");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["boots"], 1);
    let phases: Vec<&str> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "preflight",
        "namespace",
        "lower",
        "overlay",
        "start",
        "run",
        "teardown",
    ] {
        assert!(phases.contains(&p), "no phase {p}: {phases:?}");
    }
    assert_eq!(v["changes"], serde_json::json!([]));

    let r = run(&[
        "--report",
        out_s,
        "--firmware",
        &fw(),
        "--",
        "/test/exit.sh",
        "3",
    ]);
    assert_eq!(r.code, 3);
    let v = read_report(&out);
    assert_eq!(
        (v["ending"]["kind"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );

    let r = run(&["--report", out_s, "--firmware", &fw(), "--", "/test/segv"]);
    assert_eq!(r.code, 139);
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "signaled");
    assert_eq!(v["ending"]["signal"], "SIGSEGV");
    assert_eq!(v["exit_code"], 139);
}

#[test]
fn a_ctrl_c_stop_is_reported() {
    let _g = guard();
    let s = Scratch::new("report-int");
    let out = s.path("r.json");
    let mut bg = Bg::start(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/test/signals.sh",
    ]);
    bg.expect("ready");
    bg.signal(libc::SIGINT);
    assert_eq!(bg.finish().code(), Some(130));
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "interrupted");
    assert_eq!(v["ending"]["stop_reason"], "ctrl-c");
    assert_eq!(v["exit_code"], 130);
}

#[test]
fn a_launcher_error_is_reported_and_a_bad_report_path_refused() {
    let _g = guard();
    let s = Scratch::new("report-err");
    let out = s.path("r.json");
    let missing = s.path("missing.img");
    let r = run(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 125);
    let v = read_report(&out);
    assert_eq!(v["ending"]["kind"], "launcher-error");
    assert_eq!(v["exit_code"], 125);
    assert!(
        v["ending"]["error"]
            .as_str()
            .unwrap()
            .contains("missing.img"),
        "{v}"
    );
    assert_eq!(v["firmware"]["kind"], Value::Null);

    // Init not found: a launcher-side refusal with its own exit code.
    let r = run(&[
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/nope",
    ]);
    assert_eq!(r.code, 127);
    let v = read_report(&out);
    assert_eq!(
        (v["ending"]["kind"].as_str(), v["exit_code"].as_i64()),
        (Some("launcher-error"), Some(127))
    );

    let nowhere = s.path("no/such/dir/r.json");
    let r = run(&["--report", nowhere.to_str().unwrap(), "--firmware", &fw()]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "--report");
    let r = run(&["--report", s.0.to_str().unwrap(), "--firmware", &fw()]);
    assert_eq!(r.code, 125);
    assert_one_line_naming(&r, "is a directory");
}

/// A firmware that adds, modifies and deletes files and replaces a directory.
const CHANGER: &str = "echo new > /etc/added; echo changed > /etc/fw-version; rm /etc/hostname; \
                       rm -rf /test; mkdir /test; echo t > /test/fresh; mkdir -p /data/sub; echo d > /data/sub/f";

#[test]
fn changes_are_listed_correctly() {
    let _g = guard();
    let s = Scratch::new("changes");
    let out = s.path("r.json");
    let r = run(&[
        "-q",
        "--changes",
        "--report",
        out.to_str().unwrap(),
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        CHANGER,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = [
        "fwrun: 8 changes in the firmware's root:",
        "fwrun:   A /data",
        "fwrun:   A /data/sub",
        "fwrun:   A /data/sub/f",
        "fwrun:   A /etc/added",
        "fwrun:   M /etc/fw-version",
        "fwrun:   D /etc/hostname",
        "fwrun:   R /test",
        "fwrun:   A /test/fresh",
    ];
    let got: Vec<&str> = r.stderr.lines().collect();
    // The lines above, in path order.
    assert_eq!(got[..], want[..], "{}", r.stderr);
    let v = read_report(&out);
    let changes: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(changes.contains(&("/test".into(), "replaced-directory".into())));
    assert!(changes.contains(&("/etc/hostname".into(), "deleted".into())));
    assert_eq!(changes.len(), 8);

    // With --rw-dir the changes add up across runs, against the image.
    let rw = s.path("rw");
    let rw_s = rw.to_str().unwrap();
    let r = run(&[
        "-q",
        "--changes",
        "--rw-dir",
        rw_s,
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "echo 1 > /etc/one",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[
        "-q",
        "--changes",
        "--rw-dir",
        rw_s,
        "--firmware",
        &fw(),
        "--",
        "/bin/sh",
        "-c",
        "rm /etc/passwd",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "fwrun: 2 changes in the firmware's root:\nfwrun:   A /etc/one\nfwrun:   D /etc/passwd\n"
    );
}
