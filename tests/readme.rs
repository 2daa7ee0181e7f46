//! The README's promise: two commands set a fresh machine up. The test
//! command it gives must be the one CI runs, and both must exist.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The commands in the code block under "## Two commands".
fn two_commands() -> Vec<String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Two commands")
        .nth(1)
        .expect("README.md has a '## Two commands' section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section has a code block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_gives_two_commands_and_ci_runs_the_second() {
    let cmds = two_commands();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    for c in &cmds {
        let script = repo().join(c.split_whitespace().next().unwrap());
        let mode = fs::metadata(&script)
            .unwrap_or_else(|_| panic!("{} does not exist", script.display()))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", script.display());
    }
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    let runs: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("set ") && !l.starts_with("cd "))
        .collect();
    assert_eq!(
        runs,
        [format!("exec {}", cmds[1])],
        ".ci/run must run exactly the README's test command"
    );
    assert!(
        cmds[0].contains("demo"),
        "the first command boots the demo: {cmds:?}"
    );
}

#[test]
fn both_commands_install_what_they_need_first() {
    for script in ["scripts/demo.sh", "scripts/test.sh"] {
        let text = fs::read_to_string(repo().join(script)).unwrap();
        let deps = text
            .find("scripts/deps.sh")
            .unwrap_or_else(|| panic!("{script} does not call scripts/deps.sh"));
        let cargo = text.find("cargo ").unwrap();
        assert!(
            deps < cargo,
            "{script} must install its packages before it builds"
        );
    }
}
