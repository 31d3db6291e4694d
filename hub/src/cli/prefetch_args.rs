//! The prefetch options `ui` and `connect` share, and starting the prefetcher they describe.

use runicorn_cli::human::parse_bytes;
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::prefetch::{PrefetchMode, PrefetchPolicy, Prefetcher};
use runicorn_hub::store_thread::StoreHandle;

/// Which files are fetched into the cache right after each sync round, before anyone asks.
#[derive(clap::Args, Debug, Clone)]
pub struct PrefetchArgs {
    /// Files to fetch in the background after the metadata, so run pages stay complete when
    /// the server is gone: `media` (images, audio, video and the run's system.jsonl under --prefetch-max-file, at most
    /// --prefetch-run-budget per run), `all` (every file, any size) or `none` (only on demand)
    #[arg(long, value_enum, value_name = "WHAT", default_value = "media")]
    pub prefetch: PrefetchMode,
    /// Largest file `--prefetch media` fetches (K, M, G: powers of 1024)
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes,
          default_value = "10M")]
    pub prefetch_max_file: u64,
    /// Most bytes of media `--prefetch media` keeps per run, cached files included
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes,
          default_value = "100M")]
    pub prefetch_run_budget: u64,
}

impl PrefetchArgs {
    pub fn policy(&self) -> PrefetchPolicy {
        PrefetchPolicy {
            mode: self.prefetch,
            max_file_bytes: self.prefetch_max_file,
            run_budget_bytes: self.prefetch_run_budget,
        }
    }

    /// The prefetcher these options describe, fetching through `files`.
    pub fn start(&self, store: &StoreHandle, files: &RemoteFiles) -> Prefetcher {
        Prefetcher::start(store.clone(), files.clone(), self.policy())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use runicorn_hub::prefetch::PrefetchPolicy;

    use super::PrefetchArgs;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        prefetch: PrefetchArgs,
    }

    #[test]
    fn the_flags_default_to_the_library_policy() {
        let cmd = Cmd::parse_from(["x"]);
        assert_eq!(cmd.prefetch.policy(), PrefetchPolicy::default());
        let cmd = Cmd::parse_from(["x", "--prefetch", "all", "--prefetch-max-file", "1G"]);
        assert_eq!(cmd.prefetch.policy().max_file_bytes, 1 << 30);
    }
}
