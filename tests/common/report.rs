//! Reading a --report file, checked against schemas/report.schema.json.
#![allow(dead_code)]

use serde_json::Value;

use super::repo;

pub fn schema() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap()
}

/// What is wrong with `report` by the schema (empty: nothing).
pub fn schema_errors(report: &Value) -> Vec<String> {
    let schema = schema();
    let v = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    v.iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The report at `path`, which must exist and keep to the schema.
pub fn read_report(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the report was written");
    let v: Value = serde_json::from_str(&text).expect("the report is JSON");
    let errs = schema_errors(&v);
    assert!(
        errs.is_empty(),
        "the report breaks the schema: {errs:#?}\n{text}"
    );
    v
}

/// Each call the report says fwrun refused, as "SYSCALL TARGET".
pub fn refused(report: &Value) -> Vec<String> {
    report["confinement"]["refused"]
        .as_array()
        .expect("confinement.refused is a list")
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["syscall"].as_str().unwrap(),
                r["target"].as_str().unwrap()
            )
        })
        .collect()
}

/// What tests/firmware/files/accidents.sh must have refused by fwrun
/// itself (in the report), whatever the kernel would also refuse.
pub const ACCIDENT_REFUSALS: &[&str] = &[
    "clock_settime",
    "init_module",
    "syslog action 8",
    "swapon",
    "mount debugfs at /mnt/d",
    "umount2 /proc/sys",
];

/// Every accident of accidents.sh is among the report's refusals (a
/// module load as finit_module, a clock setting as settimeofday count).
pub fn assert_accidents_refused(report: &Value) {
    let got = refused(report).join("\n");
    for want in ACCIDENT_REFUSALS {
        let found = got.lines().any(|l| l.starts_with(want))
            || (*want == "init_module" && got.contains("finit_module"))
            || (*want == "clock_settime" && got.contains("settimeofday"));
        assert!(found, "{want} was not refused by fwrun: {got}");
    }
}
