//! The `--json` report of `runicorn-agent export`: the same fields as the hub's `ExportReport`
//! (`web/src/bundle_reports.rs`), so both exports speak one vocabulary. The agent does not
//! depend on the web crate; a test pins the field names.

use serde::Serialize;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Where it went (`-` for standard output).
    pub file: String,
    pub runs: u64,
    /// Files listed in the manifest, and those of them only listed (not carried).
    pub members: u64,
    pub omitted: u64,
    /// Distinct contents written (files sharing bytes count once) and their bytes.
    pub contents: u64,
    pub content_bytes: u64,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
    /// Files left out and why (links, devices).
    pub skipped: Vec<ExportSkipped>,
}

/// A file an export left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSkipped {
    pub path: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_names_are_the_hubs() {
        let report = ExportReport {
            skipped: vec![ExportSkipped {
                path: "p".into(),
                reason: "r".into(),
            }],
            ..ExportReport::default()
        };
        let value = serde_json::to_value(&report).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "file",
                "runs",
                "members",
                "omitted",
                "contents",
                "content_bytes",
                "bundle_bytes",
                "skipped"
            ]
        );
        assert_eq!(
            value["skipped"][0],
            serde_json::json!({"path": "p", "reason": "r"})
        );
    }
}
