//! The store's id types: integer keys of its rows, as typed newtypes so a remote's id is never
//! passed where a run's key is meant. Plain data; depends on nothing else in the crate.

/// A remote's id in this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteId(pub i64);

/// A run's id in this store (stable for the life of the store; a run that vanishes from its
/// remote and comes back keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey(pub i64);
