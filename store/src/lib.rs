//! The hub's store: SQLite (WAL) for everything that is queried and a content-addressed file
//! cache beside it. Not built yet: it arrives with the sync issue. This crate exists now so the
//! workspace has its final shape and the dependency rule (protocol → store → web → hub) holds.
