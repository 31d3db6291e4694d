//! The reader's limits against decompression bombs and huge manifests, with their defaults.

/// Bounds the reader enforces while it reads a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest total of uncompressed tar bytes (manifest and contents) accepted.
    pub max_total_bytes: u64,
    /// Largest ratio of uncompressed to compressed bytes accepted...
    pub max_ratio: u64,
    /// ...once more than this many uncompressed bytes were read (small bundles of repetitive
    /// data legitimately compress very well).
    pub ratio_grace_bytes: u64,
    /// Largest `bundle.json` accepted.
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 256 << 30,
            max_ratio: 1000,
            ratio_grace_bytes: 64 << 20,
            max_manifest_bytes: 64 << 20,
        }
    }
}
