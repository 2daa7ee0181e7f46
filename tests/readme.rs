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

/// Every source file named in README's "How the code is laid out" table,
/// a bare `name.rs` in a folder's row taken as being in that folder.
fn files_in_layout_table() -> std::collections::BTreeSet<String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## How the code is laid out")
        .nth(1)
        .expect("README.md has a '## How the code is laid out' section");
    let section = section.split("\n## ").next().unwrap();
    let mut named = std::collections::BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `src/")) {
        let ticks: Vec<&str> = row.split('`').skip(1).step_by(2).collect();
        let folder = ticks[0].strip_suffix('/');
        for t in &ticks {
            match (folder, t.strip_suffix(".rs")) {
                (_, Some(_)) if t.starts_with("src/") => {
                    named.insert(t.to_string());
                }
                (Some(dir), Some(_)) if !t.contains('/') => {
                    named.insert(format!("{dir}/{t}"));
                }
                _ => {}
            }
        }
    }
    named
}

#[test]
fn the_layout_section_matches_the_tree() {
    fn walk(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(repo()).unwrap();
                out.insert(rel.display().to_string());
            }
        }
    }
    let mut tree = std::collections::BTreeSet::new();
    walk(&repo().join("src"), &mut tree);
    // lib.rs only declares the modules.
    tree.remove("src/lib.rs");
    let named = files_in_layout_table();
    let missing: Vec<_> = tree.difference(&named).collect();
    let stale: Vec<_> = named.difference(&tree).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README's layout table: files not described {missing:?}, described but absent {stale:?}"
    );
}

/// "Foreign architectures": its set-up registers qemu-user-static's
/// aarch64 handler from the file the package ships (installed by
/// scripts/deps.sh), and that file holds a registration line for aarch64
/// ELF programs with the F flag, whose interpreter exists.
#[test]
fn the_foreign_architecture_set_up_names_a_real_registration() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Foreign architectures")
        .nth(1)
        .expect("README.md has a '## Foreign architectures' section");
    let section = section.split("\n## ").next().unwrap();
    let block = section.split("```").nth(1).expect("a code block");
    let conf = block
        .split_whitespace()
        .find(|w| w.starts_with("/usr/lib/binfmt.d/"))
        .expect("the set-up registers from a binfmt.d file");
    assert!(block.contains(&format!("cat {conf} > /proc/sys/fs/binfmt_misc/register")));
    for pkg in ["qemu-user-static", "binfmt-support"] {
        assert!(block.contains(pkg), "the set-up installs {pkg}");
    }
    let deps = fs::read_to_string(repo().join("scripts/deps.sh")).unwrap();
    assert!(
        deps.contains("qemu-user-static"),
        "scripts/deps.sh installs it"
    );
    let line = fs::read_to_string(conf)
        .unwrap_or_else(|e| panic!("{conf}: {e} (scripts/deps.sh installs qemu-user-static)"));
    // :name:type:offset:magic:mask:interpreter:flags
    let fields: Vec<&str> = line.trim().split(':').collect();
    assert_eq!(fields.len(), 8, "{line}");
    assert_eq!((fields[1], fields[2]), ("qemu-aarch64", "M"), "{line}");
    assert!(
        fields[4].ends_with(r"\x02\x00\xb7\x00"),
        "not aarch64's ELF machine: {line}"
    );
    assert!(fields[7].contains('F'), "no F flag: {line}");
    assert!(
        Path::new(fields[6]).exists(),
        "its interpreter {} is missing",
        fields[6]
    );
    assert!(section.contains("qemu-user-binfmt"));
}
