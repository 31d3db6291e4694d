//! The `--root` option of every agent command that reads or writes runs, and how it resolves to
//! a storage root.

use std::path::PathBuf;

/// Options every command that reads or writes runs shares.
#[derive(clap::Args, Debug, Clone)]
pub struct RootArgs {
    /// Storage root holding the runs [default: $RUNICORN_DIR, else ~/.runicorn]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl RootArgs {
    /// `--root`, else `$RUNICORN_DIR`, else `~/.runicorn`.
    pub fn resolve(&self) -> PathBuf {
        runicorn_protocol::run_format::resolve_storage_root(self.root.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        root: RootArgs,
    }

    #[test]
    fn an_explicit_root_wins() {
        let cmd = Command::try_parse_from(["agent", "--root", "/data/runs"]).unwrap();
        assert_eq!(cmd.root.resolve(), PathBuf::from("/data/runs"));
        let cmd = Command::try_parse_from(["agent"]).unwrap();
        assert_eq!(cmd.root.root, None);
    }
}
