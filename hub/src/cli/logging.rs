//! Diagnostics for developers: `RUNICORN_LOG=debug runicorn-hub …` prints tracing output on
//! stderr. Users see only the commands' own messages.

/// Installs the tracing subscriber when `RUNICORN_LOG` is set.
pub fn init() {
    if let Ok(filter) = std::env::var("RUNICORN_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .try_init();
    }
}
