//! Stopping on Ctrl-C: the future that `connect`, `ui` and `demo` race their following against.

/// Resolves on Ctrl-C (or never, when the handler cannot be installed).
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
