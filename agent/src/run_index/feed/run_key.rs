//! The key the feed remembers a run by (its directory relative to the root), kept inside the
//! feed's hash table rather than in an allocation of its own when it is short, as nearly every
//! run directory's is (`runs/<path>/<20-character id>`).
//!
//! A long-lived agent remembers every run of the root. Ten thousand small allocations made
//! during a scan end up scattered between that scan's freed buffers, and each one keeps its
//! page of memory from going back to the system; kept in the table, they take one allocation.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use arrayvec::ArrayString;

/// Keys up to this many bytes are kept inline.
const INLINE_BYTES: usize = 60;

/// A run directory relative to the root, compared and hashed as the `str` it holds (so a map
/// keyed by it is looked up with a `&str`).
#[derive(Clone)]
pub enum RunKey {
    Inline(ArrayString<INLINE_BYTES>),
    Long(Box<str>),
}

impl RunKey {
    pub fn as_str(&self) -> &str {
        match self {
            RunKey::Inline(s) => s.as_str(),
            RunKey::Long(s) => s,
        }
    }
}

impl From<&str> for RunKey {
    fn from(key: &str) -> RunKey {
        match ArrayString::from(key) {
            Ok(inline) => RunKey::Inline(inline),
            Err(_) => RunKey::Long(key.into()),
        }
    }
}

impl Borrow<str> for RunKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for RunKey {
    fn eq(&self, other: &RunKey) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RunKey {}

impl Hash for RunKey {
    // As `str` hashes: `Borrow<str>` requires the two to agree.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn short_keys_are_inline_long_ones_boxed_and_both_found_by_str() {
        let short = "runs/cv/resnet50/20261205_101010_abcdef";
        let long = format!("runs/{}/20261205_101010_abcdef", "deep/".repeat(20));
        assert!(matches!(RunKey::from(short), RunKey::Inline(_)));
        assert!(matches!(RunKey::from(long.as_str()), RunKey::Long(_)));
        let mut map = HashMap::new();
        map.insert(RunKey::from(short), 1);
        map.insert(RunKey::from(long.as_str()), 2);
        assert_eq!(map.get(short), Some(&1));
        assert_eq!(map.get(long.as_str()), Some(&2));
        assert_eq!(map.get("runs/other"), None);
        // Inline and boxed keys of the same text are the same key.
        assert_eq!(RunKey::Long(short.into()), RunKey::from(short));
    }
}
