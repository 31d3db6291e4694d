//! The TypeScript declarations of everything the API sends, generated from the serde types
//! themselves (ts-rs) into `web/ui/src/generated/api.ts`, and the status vocabulary from
//! [`RunStatus::ALL`]. The UI imports that file instead of typing the shapes out by hand.
//!
//! Test-only, so no binary compiles ts-rs: `scripts/gen-ts.sh` runs the test
//! `generated_file_is_current` with `RUNICORN_TS_OUT` set, which writes the file; without it the
//! test fails when the committed file differs from what the Rust types say.

use std::collections::BTreeSet;

use runicorn_protocol::run_format::RunStatus;
use serde::{Deserialize, Serialize};
use ts_rs::{Config, TS};

use crate::dto::{
    FileDto, LivePointsDto, MetricDto, RemoteDto, RemoteStateDto, RunDetailDto, RunDto, RunPage,
    SeriesDto,
};
use crate::error::{ErrorBody, ErrorDetail};
use crate::fleet::{
    FleetDto, FleetGpuDto, FleetProcessDto, FleetRemoteDto, FleetRunDto, FleetTotalsDto,
};
use crate::routes::columns::ColumnsDto;
use crate::routes::compare::{CompareDto, ConfigDiffRow, SeriesStatsDto};
use crate::routes::events::Changed;
use crate::routes::files::FilesPage;
use crate::routes::live::{LogEvent, MetricsEvent};
use crate::routes::logs::LogPage;
use crate::routes::media::{MediaDto, MediaImage, MediaKey, MediaSource};
use crate::routes::metrics::MetricsDto;
use crate::routes::paths::PathsDto;
use crate::routes::remotes::{RemotesDto, RemovedDto};
use crate::routes::system::{SystemDto, SystemSeries, SystemSource};
use crate::tree::PathNode;

/// The generated file, relative to the workspace root.
pub const GENERATED_FILE: &str = "web/ui/src/generated/api.ts";

/// The one command that writes [`GENERATED_FILE`].
pub const GENERATE_COMMAND: &str = "scripts/gen-ts.sh";

/// The declarations collected so far, and the names they declare.
struct Declarations {
    cfg: Config,
    text: String,
    declared: BTreeSet<String>,
    /// Every type a declaration refers to (checked against `declared` at the end).
    referenced: BTreeSet<String>,
}

impl Declarations {
    fn add<T: TS + 'static>(&mut self) {
        if let Some(docs) = T::docs() {
            self.text.push_str(&docs);
        }
        self.text.push_str("export ");
        self.text.push_str(&one_field_a_line(&T::decl(&self.cfg)));
        self.text.push_str("\n\n");
        self.declared.insert(T::ident(&self.cfg));
        for dep in T::dependencies(&self.cfg) {
            self.referenced.insert(dep.ts_name);
        }
    }
}

/// The whole of [`GENERATED_FILE`].
///
/// # Panics
/// When a declared type refers to a type not declared here (add it to the list).
pub fn generated_file() -> String {
    // JSON numbers are JavaScript numbers: every integer the API sends is below 2^53.
    let cfg = Config::new().with_large_int("number");
    let mut out = Declarations {
        cfg,
        text: header(),
        declared: BTreeSet::new(),
        referenced: BTreeSet::new(),
    };
    out.text.push_str(&statuses());
    out.declared.insert("RunStatus".to_owned());

    // Runs.
    out.add::<RemoteStateDto>();
    out.add::<RunDto>();
    out.add::<RunPage>();
    out.add::<RunDetailDto>();
    out.add::<MetricDto>();
    out.add::<FileDto>();
    out.add::<FilesPage>();
    out.add::<SkippedFilesShape>();
    out.add::<SkippedEntryShape>();
    // Series, logs, live events.
    out.add::<MetricsDto>();
    out.add::<SeriesDto>();
    out.add::<LogPage>();
    out.add::<MetricsEvent>();
    out.add::<LivePointsDto>();
    out.add::<LogEvent>();
    out.add::<Changed>();
    // Everything else.
    out.add::<PathsDto>();
    out.add::<PathNode>();
    out.add::<ColumnsDto>();
    out.add::<RemotesDto>();
    out.add::<RemovedDto>();
    out.add::<RemoteDto>();
    out.add::<SkippedItemShape>();
    out.add::<crate::routes::recycle_bin::PurgedDto>();
    out.add::<crate::routes::alerts::AlertDto>();
    out.add::<crate::routes::alerts::AlertsDto>();
    out.add::<crate::routes::alerts::AlertsEvent>();
    out.add::<crate::routes::alerts::AckedDto>();
    out.add::<CompareDto>();
    out.add::<ConfigDiffRow>();
    out.add::<SeriesStatsDto>();
    out.add::<MediaDto>();
    out.add::<MediaKey>();
    out.add::<MediaImage>();
    out.add::<MediaSource>();
    out.add::<SystemDto>();
    out.add::<SystemSeries>();
    out.add::<SystemSource>();
    // The fleet view.
    out.add::<FleetDto>();
    out.add::<FleetTotalsDto>();
    out.add::<FleetRemoteDto>();
    out.add::<FleetGpuDto>();
    out.add::<FleetProcessDto>();
    out.add::<FleetRunDto>();
    // Artifacts.
    {
        use crate::routes::artifacts::*;
        out.add::<ArtifactsDto>();
        out.add::<ArtifactDto>();
        out.add::<ArtifactVersionDto>();
        out.add::<RunLinkDto>();
        out.add::<ArtifactDetailDto>();
        out.add::<VersionFilesDto>();
        out.add::<ArtifactFileDto>();
        out.add::<RunArtifactsDto>();
        out.add::<RunAssetDto>();
        out.add::<VersionRefDto>();
        out.add::<LineageDto>();
        out.add::<LineageNodeDto>();
        out.add::<LineageRunDto>();
        out.add::<LineageEdgeDto>();
    }
    // Offline bundles.
    {
        use crate::bundle_reports::*;
        use crate::routes::bundles::{
            BundleRefusedBody, BundleRefusedDetail, ExportReady, UploadDto,
        };
        out.add::<UploadDto>();
        out.add::<ExportReady>();
        out.add::<ImportReport>();
        out.add::<ImportedBundle>();
        out.add::<BundleKind>();
        out.add::<ImportedSource>();
        out.add::<ImportedRun>();
        out.add::<RunVerdict>();
        out.add::<ImportTotals>();
        out.add::<ExportReport>();
        out.add::<ExportSkipped>();
        out.add::<BundleFailure>();
        out.add::<BundleRefusedBody>();
        out.add::<BundleRefusedDetail>();
    }
    out.add::<ErrorBody<'static>>();
    out.add::<ErrorDetail<'static>>();
    out.add::<crate::error::CandidateDto>();

    let missing: Vec<&String> = out.referenced.difference(&out.declared).collect();
    assert!(
        missing.is_empty(),
        "{GENERATED_FILE} would refer to {missing:?} without declaring them: add them to \
         typescript::generated_file"
    );
    let mut text = out.text;
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

fn header() -> String {
    format!(
        "// GENERATED FILE, do not edit. Written by `{GENERATE_COMMAND}` from the Rust types the\n\
         // dashboard's API sends (web/src/dto.rs, web/src/routes/*.rs, the store's skipped items)\n\
         // and protocol's `RunStatus::ALL`; see web/src/typescript.rs. Change the Rust types, run\n\
         // the command and commit this file: `cargo test -p runicorn-web` fails while it is stale.\n\n"
    )
}

// The store's and the protocol's types the API sends, as shapes of their own: those crates do not
// depend on ts-rs (a feature of theirs turned on by these tests would make `cargo build` and
// `cargo test` resolve them differently, and build the workspace twice). The test
// `shapes_match_the_store_types` round-trips real values through them, so a field added, removed
// or renamed there fails until it is mirrored here.

/// The files left out of one run's manifest (`runicorn_store::SkippedFiles`).
#[derive(Debug, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(rename = "SkippedFiles")]
pub struct SkippedFilesShape {
    /// How many (the list may be shorter).
    total: u64,
    /// The first of them, with reasons.
    listed: Vec<SkippedEntryShape>,
}

/// Something left out, and why (`runicorn_protocol::wire::SkippedEntry`). `name` is for people
/// only: a lossy, escaped rendering, never a path to act on.
#[derive(Debug, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(rename = "SkippedEntry")]
pub struct SkippedEntryShape {
    name: String,
    reason: String,
}

/// One thing a sync left out (`runicorn_store::SkippedItem`).
#[derive(Debug, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(rename = "SkippedItem")]
pub struct SkippedItemShape {
    /// `run`, `points` or `log`.
    kind: String,
    /// What was left out, for people (not a path to act on).
    name: String,
    reason: String,
    /// True when the hub refused it; false when the agent left it out itself.
    by_hub: bool,
    /// When it was first recorded (seconds since the epoch).
    at: f64,
}

/// `type X = { a: A, /** doc */ b: B, };` as ts-rs writes it, laid out one field a line (so a
/// change to one field is a one-line diff); any other declaration unchanged.
fn one_field_a_line(decl: &str) -> String {
    let (Some(open), true) = (decl.find("= {"), decl.ends_with("};")) else {
        return decl.to_owned();
    };
    let head = &decl[..open + 3];
    let body = &decl[open + 3..decl.len() - 2];
    let mut out = String::from(head);
    out.push('\n');
    for field in split_top_level(body) {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        for line in field.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out.push_str(",\n");
    }
    out.push_str("};");
    out
}

/// `body` cut at the commas outside brackets, string literals and comments.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let (mut in_string, mut in_comment) = (false, false);
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_comment {
            in_comment = !(b == b'/' && i > 0 && bytes[i - 1] == b'*');
        } else if in_string {
            in_string = b != b'"';
        } else {
            match b {
                b'"' => in_string = true,
                b'*' if i > 0 && bytes[i - 1] == b'/' => in_comment = true,
                b'<' | b'{' | b'(' | b'[' => depth += 1,
                b'>' | b'}' | b')' | b']' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    parts.push(&body[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    parts.push(&body[start..]);
    parts
}

/// `RunStatus` and `RUN_STATUSES`, both from [`RunStatus::ALL`] (in its order).
fn statuses() -> String {
    let names: Vec<String> = RunStatus::ALL
        .iter()
        .map(|s| format!("\"{}\"", s.as_str()))
        .collect();
    format!(
        "/** A run's status: the vocabulary of `RunStatus` (protocol/src/run_format/records.rs). */\n\
         export type RunStatus = {};\n\n\
         /** Every status, in the order of `RunStatus::ALL` (docs/run-format.md). */\n\
         export const RUN_STATUSES: readonly RunStatus[] = [{}];\n\n",
        names.join(" | "),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    #[test]
    fn declarations_are_laid_out_one_field_a_line() {
        let decl = "type A = { a: Array<number | null>, \n/**\n * Doc, with a comma.\n */\nb: \"x, y\" | { c: number, d: string }, };";
        assert_eq!(
            one_field_a_line(decl),
            "type A = {\n  a: Array<number | null>,\n  /**\n   * Doc, with a comma.\n   */\n  b: \"x, y\" | { c: number, d: string },\n};"
        );
        assert_eq!(
            one_field_a_line("type B = \"x\" | \"y\";"),
            "type B = \"x\" | \"y\";"
        );
    }

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// With `RUNICORN_TS_OUT=FILE` (as `scripts/gen-ts.sh` sets it) writes the declarations to
    /// FILE; otherwise compares them with the committed file, byte for byte.
    #[test]
    fn generated_file_is_current() {
        let text = generated_file();
        if let Some(out) = std::env::var_os("RUNICORN_TS_OUT").filter(|v| !v.is_empty()) {
            std::fs::write(&out, &text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", Path::new(&out).display()));
            return;
        }
        let path = workspace_root().join(GENERATED_FILE);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{GENERATED_FILE} is stale: run {GENERATE_COMMAND} and commit it"
        );
    }

    /// A value of `T` as JSON, read into `Shape` (which refuses unknown fields and requires its
    /// own) and written again: equal only when both have the same fields.
    fn round_trips<T: Serialize, Shape: Serialize + for<'de> Deserialize<'de>>(value: &T) {
        let json = serde_json::to_value(value).unwrap();
        let shape: Shape = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
            panic!(
                "{json} does not fit {}: {e}",
                std::any::type_name::<Shape>()
            )
        });
        assert_eq!(serde_json::to_value(&shape).unwrap(), json);
    }

    #[test]
    fn shapes_match_the_store_types() {
        let entry = runicorn_protocol::wire::SkippedEntry {
            name: "a\\x00b".into(),
            reason: "not UTF-8".into(),
        };
        round_trips::<_, SkippedEntryShape>(&entry);
        round_trips::<_, SkippedFilesShape>(&runicorn_store::SkippedFiles {
            total: 3,
            listed: vec![entry],
        });
        round_trips::<_, SkippedItemShape>(&runicorn_store::SkippedItem {
            kind: "run".into(),
            name: "runs/x".into(),
            reason: "bad name".into(),
            by_hub: true,
            at: 1.5,
        });
    }

    #[test]
    fn integers_are_numbers() {
        let text = generated_file();
        assert!(!text.contains("bigint"), "{text}");
        let run = &text[text.find("export type Run = {").expect("a Run type")..];
        let run = &run[..run.find("};").expect("the Run type's end")];
        assert!(run.contains("\n  key: number,\n"), "{run}");
        assert!(run.contains("\n  points: number,\n"), "{run}");
    }

    #[test]
    fn statuses_come_from_the_rust_vocabulary_in_order() {
        let text = statuses();
        let expected = RunStatus::ALL
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(text.contains(&format!("= [{expected}];")), "{text}");
        assert!(
            text.contains("\"killed\" | \"crashed\" | \"unreadable\""),
            "{text}"
        );
    }

    #[test]
    fn a_run_status_field_is_the_generated_union() {
        let text = generated_file();
        assert!(text.contains("\n  status: RunStatus,\n"), "{text}");
        // `run` is left out of a metrics series (not `null`), present in a comparison's.
        assert!(text.contains("\n  run?: number,\n"), "{text}");
    }
}
