//! The messages of the agent protocol (`docs/protocol.md` is their specification).
//!
//! Every frame holds one [`Envelope`]: a request id chosen by the hub, echoed by the agent in
//! its answer, and a [`Body`]. Id 0 is reserved for messages nobody asked for (the agent's
//! change [`Notice`]s). Bodies are externally tagged (`{"changes": {...}}`) so that a reader
//! never buffers a large batch to find its type.

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::artifacts::ArtifactChange;
use super::float;

/// One frame's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Request id; answers carry the id of their request, notices carry 0.
    pub id: u64,
    pub body: Body,
}

/// What a frame says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// First frame in each direction (the hub's first, then the agent's answer).
    Hello(Hello),
    /// Hub → agent: which runs changed since a cursor.
    Changes(ChangesRequest),
    /// Hub → agent: metric points of some runs after byte offsets of their `events.jsonl`.
    Points(PointsRequest),
    /// Hub → agent: bytes of some runs' `logs.txt`.
    Log(LogRequest),
    /// Hub → agent: push a [`Notice`] whenever the change sequence moves on.
    Subscribe {},
    /// Agent → hub: the answer to `changes`.
    ChangeBatch(ChangeBatch),
    /// Agent → hub: the answer to `points`.
    PointBatch(PointBatch),
    /// Agent → hub: the answer to `log`.
    LogBatch(LogBatch),
    /// Agent → hub: the answer to `subscribe`.
    Subscribed {},
    /// Agent → hub, unasked (id 0): something changed.
    Notice(Notice),
    /// Either way: the request with this id failed (id 0: the connection is unusable).
    Error(ErrorBody),
    /// Hub → agent: where the chunks of some pooled contents are (agents with
    /// [`super::CHUNKS_CAPABILITY`]).
    Chunks(super::artifacts::ChunksRequest),
    /// Agent → hub: the answer to `chunks`.
    ChunkList(super::artifacts::ChunkListBatch),
    /// Hub → agent: the host's GPUs and load now (agents with [`super::HOST_CAPABILITY`]).
    Host(super::host::HostRequest),
    /// Agent → hub: the answer to `host`.
    HostStatus(super::host::HostStatus),
}

impl Body {
    /// Short name of the message type, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Hello(_) => "hello",
            Body::Changes(_) => "changes",
            Body::Points(_) => "points",
            Body::Log(_) => "log",
            Body::Subscribe {} => "subscribe",
            Body::ChangeBatch(_) => "change_batch",
            Body::PointBatch(_) => "point_batch",
            Body::LogBatch(_) => "log_batch",
            Body::Subscribed {} => "subscribed",
            Body::Notice(_) => "notice",
            Body::Error(_) => "error",
            Body::Chunks(_) => "chunks",
            Body::ChunkList(_) => "chunk_list",
            Body::Host(_) => "host",
            Body::HostStatus(_) => "host_status",
        }
    }
}

/// The first message of each peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`super::PROTOCOL_NAME`].
    pub protocol: String,
    /// Protocol versions this peer speaks; the agent answers with the one chosen.
    pub versions: Vec<u32>,
    /// Optional features (see [`super::CAPABILITIES`]).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Program and version, e.g. `runicorn-agent/0.1.0`.
    pub software: String,
    /// Largest frame payload this peer accepts; the other side never sends more.
    pub max_frame_bytes: u32,
    /// Agent only: its storage root (absolute path on its machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Agent only: the hostname of its machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Agent only: the current epoch of its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// A position in an agent's change feed. The epoch names one life of the agent's index: a
/// cursor from another epoch means nothing and is answered with a full listing (`reset`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

/// Hub → agent: runs changed after `since` (all runs when `since` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangesRequest {
    pub since: Option<Cursor>,
    /// At most this many runs in the answer; `more` says when others wait.
    pub max_runs: u32,
}

/// Agent → hub: one batch of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// True when `since` was absent or of another epoch: this batch and the ones after it (until
    /// `more` is false) list every run, and runs not listed are gone.
    pub reset: bool,
    /// Runs whose state changed, in change order, each with its whole current state.
    pub runs: Vec<RunChange>,
    /// Run directories that no longer exist under the root.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Where the next `changes` request starts.
    pub cursor: Cursor,
    /// True when more changes are waiting: ask again at once.
    pub more: bool,
    /// Entries under the root that look like runs but cannot be sent, because their directory
    /// cannot be named on the wire (a backslash, a control character, a name that is not
    /// UTF-8, ...). Listed in a reset listing's first batch and whenever the set changes, so the
    /// hub can show them; the rest of the root syncs as usual.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedEntry>,
    /// True when `skipped` is the agent's whole current list, to replace what the hub holds
    /// even when it is empty (the last unnamable run was renamed or removed). Without it, an
    /// empty `skipped` means "no news" (older agents).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped_listed: bool,
    /// Artifacts (`artifacts/<type>/<name>`) whose state changed, each whole, in change order
    /// with the runs (their sequence values come from the same counter). In a `reset` listing
    /// every artifact is listed, and artifacts not listed are gone. Only from agents that
    /// announce the `artifacts` capability; absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactChange>,
    /// Artifact directories that no longer exist under the root (absent when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_artifacts: Vec<String>,
}

/// Something an agent left out of an answer, and why. `name` is for people only: a lossy,
/// escaped rendering (never a path to act on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntry {
    pub name: String,
    pub reason: String,
}

/// The current state of one run directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunChange {
    /// The run directory relative to the storage root (`runs/cv/resnet/20261126_...`): the
    /// run's key on this remote. Never absolute, never with `..`.
    pub dir: String,
    /// Change sequence number of this state.
    pub seq: u64,
    pub id: String,
    pub path: String,
    /// `current` or `legacy` (see `docs/run-format.md`).
    pub layout: String,
    pub alias: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Effective status as judged on the agent's machine (`crashed` and `unreadable` included).
    pub status: String,
    /// Why the run is `unreadable` or `crashed`, when it is.
    pub reason: Option<String>,
    pub created_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub hostname: Option<String>,
    /// The run carries upstream's soft-delete marker `.deleted`.
    #[serde(default)]
    pub deleted: bool,
    /// `meta.json`, `status.json`, `summary.json`, the run's configuration (`assets.json`'s
    /// `config.args` merged with `config.extra`) and `environment.json`, as JSON values. Each is
    /// absent when the file is; a value too large to send is replaced by
    /// `{"_runicorn_truncated": <bytes>}`.
    pub meta: Option<Value>,
    pub status_record: Option<Value>,
    pub summary: Option<Value>,
    pub config: Option<Value>,
    pub environment: Option<Value>,
    /// The run's `assets.json` as a JSON value (upstream 0.6/0.7 assets: code snapshot,
    /// datasets, pretrained models, archived outputs), bounded like the records above; absent
    /// when the file is (and from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Value>,
    /// How far `events.jsonl` holds complete lines, and what is in them.
    pub events: EventsState,
    /// Size of `logs.txt` in bytes (0 when absent).
    pub log_bytes: u64,
    /// Every regular file of the run directory (recursively; links are not followed).
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Files of the run left out of `files` because they cannot be named on the wire or read
    /// (at most 100 listed; `skipped_files_total` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<SkippedEntry>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_files_total: u64,
    /// Alerts the agent raised about the run (`wire::alerts`), oldest first; omitted when
    /// none, and absent from older agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<super::alerts::RunAlert>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the agent knows of a run's `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventsState {
    /// Bytes of complete lines (a torn last line is not counted).
    pub bytes: u64,
    /// Complete lines.
    pub lines: u64,
    pub points: u64,
    #[serde(default)]
    pub keys: Vec<String>,
    pub last_step: Option<i64>,
    pub last_event_at: Option<f64>,
    pub corrupt_lines: u64,
}

/// One file of a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the run directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: f64,
    /// Lowercase hex SHA-256 of the content, when the agent has computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Hub → agent: points of several runs, each from a byte offset that begins a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsRequest {
    pub runs: Vec<PointsWanted>,
    /// Budget for the answer: the agent stops reading once this many bytes of event lines were
    /// read (always at least one line of the first run, so reading progresses).
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsWanted {
    pub dir: String,
    /// Byte offset in `events.jsonl` where the hub's copy ends (0 at first).
    pub offset: u64,
    /// 1-based number of the line that starts at `offset`.
    pub next_line: u64,
}

/// Agent → hub: points read from event files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointBatch {
    pub runs: Vec<RunPoints>,
}

/// The metric points of the complete lines of `events.jsonl` from byte `from` to byte `to`.
/// Rows are metrics events in file order; each series holds one key's values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunPoints {
    pub dir: String,
    /// Where reading began. Differs from the requested offset only when `truncated`.
    pub from: u64,
    /// Where reading stopped (the start of the next unread line).
    pub to: u64,
    /// 1-based number of the line that starts at `to`.
    pub next_line: u64,
    /// The file was shorter than the requested offset (replaced or truncated): reading began
    /// again at 0 and the hub must drop what it held for this run.
    #[serde(default)]
    pub truncated: bool,
    /// True when `to` is the end of the complete lines at the time of reading.
    pub eof: bool,
    /// The run directory is gone.
    #[serde(default)]
    pub missing: bool,
    /// Step of each row. A metrics event without `global_step` takes its line number.
    pub steps: Vec<i64>,
    /// Time of each row (epoch seconds; `NaN` when the event had none).
    #[serde(with = "float::values")]
    pub times: Vec<f64>,
    pub series: Vec<Series>,
    /// Corrupt lines met in this range (at most the first 100).
    #[serde(default)]
    pub corrupt: Vec<WireCorruptLine>,
}

/// One metric key's values within a [`RunPoints`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Series {
    pub key: String,
    /// Row index of each value; absent when the key has a value in every row (the usual case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<u32>>,
    #[serde(with = "float::values")]
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireCorruptLine {
    pub line: u64,
    pub offset: u64,
    pub reason: String,
}

/// Hub → agent: bytes of `logs.txt` of several runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRequest {
    pub runs: Vec<LogWanted>,
    /// Budget for the answer, in bytes of the log files.
    pub max_bytes: u64,
    /// The hub stores exact bytes: each chunk's content is exactly the file's bytes `from..to`
    /// (`bytes_b64` where they are not UTF-8). Without it an agent sends lossy text, as agents
    /// before the `log-bytes` capability always did (an older hub cannot read `bytes_b64`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogWanted {
    pub dir: String,
    /// Where the hub's copy ends; absent: only the tail (the last whole lines within the
    /// per-run budget).
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    pub runs: Vec<LogChunk>,
}

/// Bytes `from..to` of a run's `logs.txt` (whole lines only, unless one line exceeds the
/// budget). On the wire the bytes travel as `text` when they are valid UTF-8 (the usual case,
/// and what every version understands) and as `bytes_b64` (standard base64, padded) when they
/// are not; exactly one of the two is present. In an answer to an `exact` request
/// `bytes.len() == to - from`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "LogChunkWire<String>")]
pub struct LogChunk {
    pub dir: String,
    pub from: u64,
    pub to: u64,
    /// The file's bytes `from..to` (lossy text when the request was not `exact`).
    pub bytes: Vec<u8>,
    /// The file was shorter than the requested offset: the hub must drop its copy.
    pub truncated: bool,
    pub eof: bool,
}

/// [`LogChunk`] as it travels.
#[derive(Serialize, Deserialize)]
struct LogChunkWire<S> {
    dir: S,
    from: u64,
    to: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes_b64: Option<String>,
    #[serde(default)]
    truncated: bool,
    eof: bool,
}

impl Serialize for LogChunk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (text, bytes_b64) = match std::str::from_utf8(&self.bytes) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(Base64::encode_string(&self.bytes))),
        };
        LogChunkWire {
            dir: self.dir.as_str(),
            from: self.from,
            to: self.to,
            text,
            bytes_b64,
            truncated: self.truncated,
            eof: self.eof,
        }
        .serialize(serializer)
    }
}

impl TryFrom<LogChunkWire<String>> for LogChunk {
    type Error = String;

    fn try_from(w: LogChunkWire<String>) -> Result<LogChunk, String> {
        let bytes = match (w.text, w.bytes_b64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => Base64::decode_vec(&b64)
                .map_err(|e| format!("log chunk of {:?}: bytes_b64 is not base64 ({e})", w.dir))?,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "log chunk of {:?} holds both text and bytes_b64",
                    w.dir
                ))
            }
            (None, None) => {
                return Err(format!(
                    "log chunk of {:?} holds neither text nor bytes_b64",
                    w.dir
                ))
            }
        };
        Ok(LogChunk {
            dir: w.dir,
            from: w.from,
            to: w.to,
            bytes,
            truncated: w.truncated,
            eof: w.eof,
        })
    }
}

/// Agent → hub, unasked: the change feed reached `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub cursor: Cursor,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Kinds of failure, so a peer can act without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No common protocol version, or a `hello` from something else.
    Incompatible,
    /// A message the receiver cannot act on (unknown type, missing field, wrong order).
    BadRequest,
    /// A run directory or file that does not exist.
    NotFound,
    /// A path that is absolute or climbs out of the storage root.
    OutsideRoot,
    /// An answer would exceed the frame limit.
    TooLarge,
    /// The receiver failed (its index, its disk).
    Internal,
    /// An error code from a newer peer.
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorCode::Incompatible => "incompatible",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::OutsideRoot => "outside_root",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        };
        f.write_str(s)
    }
}

/// Checks a run directory or file path received from a peer: relative, `/`-separated, no `..`,
/// no empty or `.` segment, no NUL or backslash, at most 4096 bytes. Both sides call it on every
/// path they receive, so a broken peer can never name a place outside a root.
pub fn check_wire_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > 4096 {
        return Err(format!("path of {} bytes (limit 4096)", path.len()));
    }
    if path.starts_with('/') {
        return Err(format!("absolute path {path:?}"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(format!("path {path:?} holds a NUL or a backslash"));
    }
    for segment in path.split('/') {
        match segment {
            "" | "." => return Err(format!("path {path:?} has an empty or '.' segment")),
            ".." => return Err(format!("path {path:?} climbs out with '..'")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_externally_tagged_snake_case() {
        let e = Envelope {
            id: 3,
            body: Body::Changes(ChangesRequest {
                since: None,
                max_runs: 10,
            }),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"id":3,"body":{"changes":{"since":null,"max_runs":10}}}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        let sub: Envelope = serde_json::from_str(r#"{"id":1,"body":{"subscribe":{}}}"#).unwrap();
        assert_eq!(sub.body, Body::Subscribe {});
    }

    #[test]
    fn unknown_error_codes_still_parse() {
        let e: ErrorBody =
            serde_json::from_str(r#"{"code":"quota_exceeded","message":"x"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }

    fn chunk(bytes: &[u8]) -> LogChunk {
        LogChunk {
            dir: "runs/a/1".into(),
            from: 10,
            to: 10 + bytes.len() as u64,
            bytes: bytes.to_vec(),
            truncated: false,
            eof: true,
        }
    }

    #[test]
    fn log_chunks_travel_as_text_when_utf8_and_base64_otherwise() {
        let utf8 = chunk("héllo \u{1b}[31mred\n".as_bytes());
        let json = serde_json::to_string(&utf8).unwrap();
        assert!(
            json.contains(r#""text":"h"#) && !json.contains("bytes_b64"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<LogChunk>(&json).unwrap(), utf8);

        // Invalid bytes, a lone continuation byte, CR, and a character cut in half at the end.
        let raw = [b'a', 0xFF, 0xFE, b'\r', 0x80, b'\n', 0xE2, 0x82];
        let odd = chunk(&raw);
        let json = serde_json::to_string(&odd).unwrap();
        assert!(
            json.contains("bytes_b64") && !json.contains(r#""text""#),
            "{json}"
        );
        let back: LogChunk = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bytes, raw);
        assert_eq!(back.to - back.from, back.bytes.len() as u64);
        assert_eq!(
            serde_json::from_str::<LogChunk>(&serde_json::to_string(&chunk(b"")).unwrap())
                .unwrap()
                .bytes,
            b""
        );
    }

    #[test]
    fn a_character_split_across_two_chunks_survives_both() {
        let text = "€uro\n".as_bytes(); // € is E2 82 AC
        let (a, b) = text.split_at(2);
        let mut joined = Vec::new();
        for part in [a, b] {
            let json = serde_json::to_string(&chunk(part)).unwrap();
            assert!(
                json.contains("bytes_b64"),
                "half a character is not UTF-8: {json}"
            );
            joined.extend(serde_json::from_str::<LogChunk>(&json).unwrap().bytes);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn an_older_agents_text_chunk_still_reads_and_bad_ones_are_refused() {
        let old = r#"{"dir":"runs/a/1","from":0,"to":3,"text":"ab\n","eof":true}"#;
        let c: LogChunk = serde_json::from_str(old).unwrap();
        assert_eq!((c.bytes.as_slice(), c.truncated), (&b"ab\n"[..], false));
        for bad in [
            r#"{"dir":"d","from":0,"to":1,"eof":true}"#,
            r#"{"dir":"d","from":0,"to":1,"text":"a","bytes_b64":"YQ==","eof":true}"#,
            r#"{"dir":"d","from":0,"to":1,"bytes_b64":"not base64!","eof":true}"#,
        ] {
            assert!(serde_json::from_str::<LogChunk>(bad).is_err(), "{bad}");
        }
        let req: LogRequest = serde_json::from_str(r#"{"runs":[],"max_bytes":5}"#).unwrap();
        assert!(!req.exact, "an older hub asks for text");
    }

    #[test]
    fn artifacts_and_assets_are_absent_when_empty_and_optional_when_read() {
        let batch = ChangeBatch {
            reset: false,
            runs: vec![RunChange::default()],
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
        };
        let text = serde_json::to_string(&batch).unwrap();
        for absent in ["artifacts", "removed_artifacts", "assets"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
        // What an older agent sends still reads; what a newer one sends round-trips.
        assert_eq!(serde_json::from_str::<ChangeBatch>(&text).unwrap(), batch);
        let mut newer = batch;
        newer.runs[0].assets = Some(serde_json::json!({"datasets": []}));
        newer.artifacts = vec![ArtifactChange {
            dir: "artifacts/model/m".into(),
            seq: 1,
            kind: "model".into(),
            name: "m".into(),
            ..ArtifactChange::default()
        }];
        newer.removed_artifacts = vec!["artifacts/model/old".into()];
        let text = serde_json::to_string(&newer).unwrap();
        assert!(text.contains(r#""type":"model""#), "{text}");
        assert_eq!(serde_json::from_str::<ChangeBatch>(&text).unwrap(), newer);
    }

    #[test]
    fn wire_paths_never_leave_the_root() {
        for good in ["runs/a/b", "runs/x/20261126_000000_abcdef", "media/img.png"] {
            assert!(check_wire_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "runs/../../x",
            "..",
            "a//b",
            "a/./b",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_wire_path(bad).is_err(), "{bad:?}");
        }
    }
}
