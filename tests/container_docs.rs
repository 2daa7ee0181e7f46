//! docs/containers.md's CI snippets and contrib/kubernetes/fwrun-job.yaml:
//! they parse, hold the fields the page relies on, and every job runs the
//! one fwrun command that tests/container.rs runs in a podman container.
//! (Unprivileged: needs python3 with yaml and jsonschema, from Debian.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What tests/container/check-snippets.py found in the repository `root`,
/// or its complaint.
fn snippets(root: &Path) -> Result<Value, String> {
    let out = Command::new("python3")
        .arg(repo().join("tests/container/check-snippets.py"))
        .arg(root)
        .output()
        .expect("running python3: run scripts/deps.sh");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn commands(v: &Value) -> Vec<Value> {
    v["commands"].as_array().unwrap().clone()
}

#[test]
fn every_documented_job_runs_the_same_fwrun_command() {
    let v = snippets(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let gitlab = v["gitlab"].as_object().unwrap();
    assert_eq!(gitlab.len(), 1, "{v}");
    let actions = v["actions"].as_object().unwrap();
    let runner = &actions["on-the-runner"];
    let container = &actions["in-a-container"];
    assert!(runner["container"].is_null(), "{v}");
    assert_eq!(container["container"]["options"], "--privileged", "{v}");
    assert_eq!(v["gitlab_runner_privileged"], true, "{v}");
    let cmd = commands(gitlab.values().next().unwrap());
    assert_eq!(cmd.len(), 1, "{v}");
    assert_eq!(commands(runner), cmd);
    assert_eq!(commands(container), cmd);
    assert_eq!(v["kubernetes"].as_array().unwrap(), &cmd);
    let words: Vec<&str> = cmd[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // The command tests/container.rs runs (it reads it from the page).
    assert_eq!(
        words,
        [
            "fwrun",
            "--firmware",
            "firmware.ext2",
            "--timeout",
            "5m",
            "--report",
            "fwrun-report.json",
            "--",
            "/sbin/init"
        ]
    );
    assert_eq!(v["kubernetes_run_is_memory"], true, "{v}");
    assert_eq!(v["kubernetes_reports"], true, "{v}");
}

/// A copy of the repository's docs and manifest, with one edit applied.
fn edited(tag: &str, file: &str, from: &str, to: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("fwrun-snippets-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    for f in ["docs/containers.md", "contrib/kubernetes/fwrun-job.yaml"] {
        let dst = root.join(f);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let mut text = fs::read_to_string(repo().join(f)).unwrap();
        if f == file {
            assert!(text.contains(from), "{f} has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        fs::write(&dst, text).unwrap();
    }
    root
}

/// The checks can fail: each broken copy is refused, naming the snippet.
#[test]
fn broken_snippets_are_refused() {
    let cases = [
        (
            "options",
            "docs/containers.md",
            "options: --privileged",
            "options: --cpus 2",
            "GitHub Actions",
        ),
        (
            "indent",
            "docs/containers.md",
            "  script:\n",
            " script:\n",
            "does not parse",
        ),
        (
            "privileged",
            "contrib/kubernetes/fwrun-job.yaml",
            "privileged: true",
            "privileged: false",
            "fwrun-job.yaml",
        ),
        (
            "restart",
            "contrib/kubernetes/fwrun-job.yaml",
            "restartPolicy: Never",
            "restartPolicy: OnFailure",
            "fwrun-job.yaml",
        ),
        (
            "volume",
            "contrib/kubernetes/fwrun-job.yaml",
            "- name: run\n          emptyDir",
            "- name: runs\n          emptyDir",
            "volume run",
        ),
    ];
    for (tag, file, from, to, named) in cases {
        let root = edited(tag, file, from, to);
        let result = snippets(&root);
        let _ = fs::remove_dir_all(&root);
        let err = result.err().unwrap_or_else(|| panic!("{tag}: accepted"));
        assert!(err.contains(named), "{tag}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{tag}: {err}");
    }
}
