//! The SSH client of the hub (being written).
