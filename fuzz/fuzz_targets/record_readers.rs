//! The whole-file record readers (`json_file::read_json` into `Meta`, `StatusRecord`,
//! `DeletedMarker` and a plain JSON value) and the rewriting of Python's non-finite tokens
//! (`nonfinite`), over a real file holding the input.
//!
//! Input: the file's content.
//!
//! Checked: `read_json` reads exactly what the documented rule reads (strict JSON, else JSON with
//! bare `NaN`/`Infinity`/`-Infinity` as `null`), for every record type; a record read and written
//! back with `write_json_atomic` reads back the same (nothing lost, nothing invented); a file it
//! refuses is reported as malformed and the message names the file. The token rewriting is
//! idempotent, never touches valid JSON, changes nothing inside strings, agrees between its two
//! forms, and its marker strings read back as the non-finite numbers. Limits agree end to end:
//! any record value read, once cut to `MAX_RECORD_DEPTH` as the agent cuts it, travels inside a
//! change batch frame and decodes to the same value on the other side.

#![no_main]

use std::fmt::Debug;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use runicorn_fuzz::{debug_text, scratch_dir};
use runicorn_protocol::run_format::json_file::{read_json, write_json_atomic, RecordError};
use runicorn_protocol::run_format::nonfinite::{
    mark_nonfinite_tokens, marker_value, replace_nonfinite_tokens,
};
use runicorn_protocol::run_format::record_depth::cut_deep_values;
use runicorn_protocol::run_format::{DeletedMarker, Meta, StatusRecord};
use runicorn_protocol::wire::{
    decode_payload, encode_frame, Body, ChangeBatch, Cursor, Envelope, RunChange,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The reading rule as `docs/run-format.md` states it, built from public pieces: strict JSON,
/// else bare non-finite tokens as `null`; containers nested deeper than `MAX_RECORD_DEPTH` cut to
/// the placeholder; then the record's type.
fn expected<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut value: Value = serde_json::from_slice(bytes).ok().or_else(|| {
        replace_nonfinite_tokens(bytes, b"null").and_then(|f| serde_json::from_slice(&f).ok())
    })?;
    cut_deep_values(&mut value);
    serde_json::from_value(value).ok()
}

fn check_record<T: DeserializeOwned + Serialize + Debug>(
    bytes: &[u8],
    path: &Path,
    check_write_back: bool,
    check_refusal: bool,
) {
    match expected::<T>(bytes) {
        Some(want) => {
            let got: T = read_json(path).expect("read_json reads what the rule accepts");
            assert_eq!(debug_text(&got), debug_text(&want));
            if !check_write_back {
                return;
            }
            let copy = path.with_extension("copy.json");
            write_json_atomic(&copy, &got).expect("write the record back");
            let again: T = read_json(&copy).expect("a record we wrote reads back");
            assert_eq!(debug_text(&again), debug_text(&got), "lost in a write");
        }
        None if check_refusal => {
            // Every refusal costs read_json's retry pause, so only some inputs check it.
            match read_json::<T>(path) {
                Err(err @ RecordError::Malformed { .. }) => {
                    let message = err.to_string();
                    assert!(message.contains(&path.display().to_string()), "{message}");
                }
                Err(other) => panic!("a refused record must be malformed, not: {other}"),
                Ok(v) => panic!("read_json accepted what the rule refuses: {v:?}"),
            }
        }
        None => {}
    }
}

/// Bytes outside JSON strings replaced by a space, strings kept (a rough view of what the
/// rewriting must leave alone).
fn strings_only(bytes: &[u8]) -> Vec<u8> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = Vec::new();
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        }
    }
    out
}

fn markers_to_null(v: &mut Value) {
    match v {
        Value::String(s) if marker_value(s).is_some() => *v = Value::Null,
        Value::Array(items) => items.iter_mut().for_each(markers_to_null),
        Value::Object(map) => map.values_mut().for_each(markers_to_null),
        _ => {}
    }
}

fn check_nonfinite(bytes: &[u8]) {
    let nulled = replace_nonfinite_tokens(bytes, b"null");
    let marked = mark_nonfinite_tokens(bytes);
    assert_eq!(nulled.is_some(), marked.is_some(), "the two forms agree");
    if serde_json::from_slice::<Value>(bytes).is_ok() {
        assert!(nulled.is_none(), "valid JSON holds no bare token");
    }
    let (Some(nulled), Some(marked)) = (nulled, marked) else {
        return;
    };
    assert!(
        mark_nonfinite_tokens(&nulled).is_none(),
        "null leaves no token"
    );
    assert!(
        mark_nonfinite_tokens(&marked).is_none(),
        "markers leave no token"
    );
    // Strings of the input survive in order; the marked form only adds its marker strings.
    assert_eq!(strings_only(&nulled), strings_only(bytes));
    // Where `null` fits, a string fits: the marked form parses whenever the nulled one does,
    // and with its markers as null it is the same value.
    if let Ok(mut from_nulled) = serde_json::from_slice::<Value>(&nulled) {
        let mut from_marked: Value =
            serde_json::from_slice(&marked).expect("markers stand where null stands");
        markers_to_null(&mut from_marked);
        markers_to_null(&mut from_nulled);
        assert_eq!(from_marked, from_nulled);
    }
}

/// A record the agent read (and cut) goes in a change batch frame and comes out the same.
fn check_travels(mut value: Value) {
    if value.is_null() {
        return; // `summary: null` reads back as no summary, which is what a null record means
    }
    // Already cut by the reading rule; cutting again changes nothing.
    assert!(
        !cut_deep_values(&mut value),
        "a value read is within the depth limit"
    );
    let run = RunChange {
        dir: "runs/a/1".into(),
        seq: 1,
        id: "1".into(),
        path: "a".into(),
        layout: "current".into(),
        status: "finished".into(),
        summary: Some(value),
        ..RunChange::default()
    };
    let envelope = Envelope {
        id: 7,
        body: Body::ChangeBatch(ChangeBatch {
            reset: true,
            runs: vec![run],
            removed: vec![],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        }),
    };
    let frame = encode_frame(&envelope, u32::MAX).expect("a cut record encodes");
    let back = decode_payload(&frame[4..]).expect("a cut record decodes on the other side");
    assert_eq!(
        debug_text(&back),
        debug_text(&envelope),
        "the record changed on the way"
    );
}

fuzz_target!(|data: &[u8]| {
    check_nonfinite(data);
    let path = scratch_dir().join("record.json");
    std::fs::write(&path, data).expect("write the record file");
    // Input-determined choices keep the slow checks (a write is an fsync, a refusal costs
    // read_json's retry pause) to some inputs: one record type is written back per input, and
    // one input in 64 has its refusal checked.
    let hash = data.iter().fold(0u8, |a, &b| a.wrapping_mul(31) ^ b);
    let write_back = usize::from(hash % 4);
    let check_refusal = hash / 4 % 64 == 0;
    check_record::<Value>(data, &path, write_back == 0, check_refusal);
    if let Some(value) = expected::<Value>(data) {
        check_travels(value);
    }
    check_record::<Meta>(data, &path, write_back == 1, false);
    check_record::<StatusRecord>(data, &path, write_back == 2, false);
    check_record::<DeletedMarker>(data, &path, write_back == 3, false);
});
