//! The dashboard: an axum HTTP API over the store's read side and the embedded browser UI.
//! Not built yet: it arrives with the web dashboard issue.
