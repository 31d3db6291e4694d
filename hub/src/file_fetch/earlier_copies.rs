//! The copy this hub process last cached of each run file, so that when the file grows (a
//! running run's `system.jsonl` gains a sample every few seconds, a log gains lines) the next
//! fetch starts from those bytes and transfers only what was appended.
//!
//! Nothing here is trusted: the new file's SHA-256 from the manifest checks the whole, seed
//! included, and a seed that was not a prefix (the file was rewritten) is forgotten and the
//! file fetched again in full (`RemoteFiles::ensure_cached_observed`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use runicorn_store::{Partial, RunKey, StoreError};

/// Files remembered at most; past it the memory starts afresh (a seed is only a saving).
const MAX_REMEMBERED: usize = 4096;

/// Bytes copied at a time from the earlier copy into the partial.
const COPY_CHUNK: usize = 256 * 1024;

/// (run, manifest path) → (SHA-256, size) of the copy last cached by this process.
#[derive(Default)]
pub struct EarlierCopies {
    copies: HashMap<(RunKey, String), (String, u64)>,
}

impl EarlierCopies {
    pub fn remember(&mut self, run: RunKey, path: &str, sha256: &str, size: u64) {
        if self.copies.len() >= MAX_REMEMBERED {
            self.copies.clear();
        }
        self.copies
            .insert((run, path.to_owned()), (sha256.to_owned(), size));
    }

    pub fn forget(&mut self, run: RunKey, path: &str) {
        self.copies.remove(&(run, path.to_owned()));
    }

    /// The SHA-256 of the remembered copy when it is shorter than `listed_size` (so possibly a
    /// prefix of the file as listed now).
    pub fn get(&self, run: RunKey, path: &str, listed_size: u64) -> Option<String> {
        self.copies
            .get(&(run, path.to_owned()))
            .filter(|(_, size)| *size > 0 && *size < listed_size)
            .map(|(sha, _)| sha.clone())
    }
}

/// Appends the bytes of `copy` to `partial`. A copy that cannot be read (removed by `cache
/// gc` meanwhile) stops the seeding where it is: the partial keeps a prefix either way. Only a
/// failure to write the partial is an error.
pub fn append_copy(copy: &Path, partial: &mut Partial) -> Result<(), StoreError> {
    let Ok(mut file) = std::fs::File::open(copy) else {
        return Ok(());
    };
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => partial.append(&buf[..n])?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shorter_remembered_copy_is_offered_as_a_seed() {
        let mut m = EarlierCopies::default();
        let run = RunKey(7);
        assert_eq!(m.get(run, "system.jsonl", 100), None);
        m.remember(run, "system.jsonl", "aa", 60);
        assert_eq!(m.get(run, "system.jsonl", 100).as_deref(), Some("aa"));
        assert_eq!(
            m.get(run, "system.jsonl", 60),
            None,
            "same size: nothing to add"
        );
        assert_eq!(m.get(run, "system.jsonl", 50), None, "shrunk: not a prefix");
        assert_eq!(m.get(RunKey(8), "system.jsonl", 100), None);
        m.forget(run, "system.jsonl");
        assert_eq!(m.get(run, "system.jsonl", 100), None);
    }
}
