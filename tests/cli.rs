//! Bad flags: exit 125 and one line naming the flag, before anything else
//! (no root needed).

use std::process::Command;

fn fwrun(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fwrun"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_get_one_line_and_125() {
    for (args, names) in [
        (&[][..], "--firmware"),
        (&["--firmware", "x", "--bogus"], "--bogus"),
        (&["--firmware", "x", "--net", "bridge"], "bridge"),
        (
            &["--firmware", "x", "--stop-signal", "NOPE"],
            "--stop-signal",
        ),
        (&["--firmware", "x", "--timeout", "1d"], "--timeout"),
        (&["--firmware", "x", "--bind", "relative"], "--bind"),
        (&["--firmware", "x", "--env", "NOVALUE"], "--env"),
        (&["--firmware", "x", "--hostname", "bad_name"], "--hostname"),
        (&["--cleanup", "--firmware", "x"], "--cleanup"),
    ] {
        let (code, stdout, stderr) = fwrun(args);
        assert_eq!(code, 125, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            lines[0].starts_with("fwrun: ") && lines[0].contains(names),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let (code, out, _) = fwrun(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--firmware <PATH>") && out.contains("Exit status:"),
        "{out}"
    );
    let (code, out, _) = fwrun(&["--version"]);
    assert_eq!((code, out.starts_with("fwrun ")), (0, true), "{out}");
}
