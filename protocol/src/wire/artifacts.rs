//! The artifact parts of the protocol (`docs/protocol.md`, "Artifacts"): an artifact's whole
//! current state as a change batch carries it (versions, aliases, manifests, lineage), and the
//! chunk list of a pooled content that lets the hub fetch only the chunks it lacks.
//!
//! Agents that send these announce [`ARTIFACTS_CAPABILITY`] and [`CHUNKS_CAPABILITY`] in their
//! `hello`; a hub never asks an agent without them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run_format::artifacts::{Reference, RunLink};

/// Change batches carry `artifacts` and `removed_artifacts`.
pub const ARTIFACTS_CAPABILITY: &str = "artifacts";
/// The agent answers `chunks` requests.
pub const CHUNKS_CAPABILITY: &str = "chunks";

/// The current state of one artifact (`artifacts/<type>/<name>` under the root), sent whole
/// whenever anything in it changed, like a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactChange {
    /// `artifacts/<type>/<name>`, relative to the root: the artifact's key on this remote.
    pub dir: String,
    /// Change sequence number of this state (the same sequence as the runs').
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `latest` and the user's aliases.
    #[serde(default)]
    pub aliases: BTreeMap<String, u64>,
    /// Every version, oldest first.
    #[serde(default)]
    pub versions: Vec<ArtifactVersionState>,
    /// Why part of it could not be read (a damaged `versions.json`, a version without its
    /// manifest); what could be read is still sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Bytes the artifact's contents occupy on the server after dedup: its versions' distinct
    /// whole pool files plus the distinct chunks of its chunked contents (a chunk shared by
    /// several versions counts once). Absent from agents that do not measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
}

/// One version of an [`ArtifactChange`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactVersionState {
    pub version: u64,
    #[serde(default)]
    pub created_at: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
    /// The user's metadata (a JSON object), cut like run records when too deep or too large.
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub produced_by: Option<RunLink>,
    #[serde(default)]
    pub used_by: Vec<RunLink>,
    #[serde(default)]
    pub files: Vec<ArtifactFileState>,
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// One file of a version, and how the server holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFileState {
    /// Inside the version, relative, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub stored: StoredAs,
}

/// How the server holds a pooled content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredAs {
    /// `artifacts/.pool/<sha[:2]>/<sha>`.
    Whole,
    /// `artifacts/.pool/<sha[:2]>/<sha>.chunks.json` and its chunks.
    Chunked,
    /// Neither: the pool lost it (its bytes cannot be fetched).
    Missing,
    #[serde(other)]
    Unknown,
}

/// Hub → agent: the chunk lists of some contents, by whole-file SHA-256. A content is looked up
/// in the artifact pool (`artifacts/.pool`) and in upstream's blob store (`archive/blobs`).
///
/// A long list comes in pages: each content's answer starts at chunk `start_chunk` (0 when
/// absent) and holds at most `max_chunks` chunks (as many as fit the frame when absent); its
/// [`ContentChunks::next_chunk`] says where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunksRequest {
    pub contents: Vec<String>,
    /// Index of the first chunk wanted, for every content named (a later page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_chunk: Option<u64>,
    /// Most chunks wanted per content in this answer (the agent may send fewer to keep the
    /// answer within the hub's frame limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunks: Option<u32>,
}

/// Agent → hub: the answer to `chunks`, one entry per content asked for, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkListBatch {
    pub contents: Vec<ContentChunks>,
}

/// Where a content's bytes are, chunk by chunk. A content the agent cannot find has no chunks
/// and an `error`.
///
/// `chunks` is one page of the list, starting at the request's `start_chunk`; when more
/// follow, `next_chunk` is the index of the next one (ask again with `start_chunk` set to it).
/// A list is whole only when `next_chunk` is absent: a hub that does not page (it never sets
/// `start_chunk`) finds the chunks adding up to less than `size` and must refuse the list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentChunks {
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub chunks: Vec<ChunkLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_chunk: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One chunk: its hash and size, and the file (relative to the root) and offset to read its
/// bytes from, which the hub reads over SFTP and checks against `sha256` before keeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLocation {
    pub sha256: String,
    pub size: u32,
    /// `artifacts/.chunks/<sha[:2]>/<sha>` (offset 0), or a whole file in the pool or in
    /// `archive/blobs` at `offset`.
    pub path: String,
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_fields_are_optional_both_ways() {
        let old: ChunksRequest = serde_json::from_str(r#"{"contents":["a"]}"#).unwrap();
        assert_eq!((old.start_chunk, old.max_chunks), (None, None));
        let text = serde_json::to_string(&old).unwrap();
        assert_eq!(
            text, r#"{"contents":["a"]}"#,
            "an unpaged request reads as before"
        );
        let paged: ContentChunks =
            serde_json::from_str(r#"{"sha256":"x","size":9,"chunks":[],"next_chunk":7}"#).unwrap();
        assert_eq!(paged.next_chunk, Some(7));
        let whole: ContentChunks = serde_json::from_str(r#"{"sha256":"x","size":0}"#).unwrap();
        assert_eq!(whole.next_chunk, None);
    }
}
