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
