//! `runicorn-agent artifacts`: the artifact store under the storage root from the command line.
//! Without a subcommand it lists artifacts (`list`); `rm` deletes a version, `pack` turns large
//! pooled files into shared chunks, `gc` reclaims pool space no version uses. The work is done by
//! `runicorn_artifact_store`; these modules parse, show progress and print.

mod gc;
mod list;
mod pack;
mod rm;

use std::path::PathBuf;

use crate::root_args::RootArgs;

#[derive(clap::Args, Debug)]
pub struct ArtifactsArgs {
    #[command(subcommand)]
    pub action: Option<ArtifactsAction>,
    /// Storage root holding the runs and artifacts [default: $RUNICORN_DIR, else ~/.runicorn]
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub list: list::ListArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum ArtifactsAction {
    /// Delete one version (NAME:vN): its folder and its entry in versions.json go, aliases
    /// naming it are dropped and `latest` moves to the newest version left. Pool bytes stay
    /// until `gc`, so nothing another version uses can be lost.
    Rm(rm::RmArgs),
    /// Turn every whole pooled file of 4 MiB or more into content-defined chunks shared between
    /// versions (recipe in the pool, chunks in artifacts/.chunks); versions read the same after.
    Pack(pack::PackArgs),
    /// Delete pool files and chunks that no version's manifest names (after `rm`), and temp
    /// files older than an hour. Refuses, deleting nothing, when a version's manifest cannot be
    /// read. Safe while writers log: it waits for them on the pool lock.
    Gc(gc::GcArgs),
}

/// Runs the command; the process exit code.
pub fn artifacts(args: ArtifactsArgs) -> anyhow::Result<u8> {
    let common = Common {
        root: RootArgs { root: args.root }.resolve(),
        json: args.json,
    };
    let kind = args.list.kind.clone();
    match args.action {
        None => list::list(args.list, &common),
        Some(ArtifactsAction::Rm(mut rm_args)) => {
            rm_args.kind = rm_args.kind.or(kind);
            rm::rm(rm_args, &common)
        }
        Some(_) if kind.is_some() => {
            anyhow::bail!("--type applies to the listing and to `rm`, not to `pack` or `gc` (they work on the whole pool)")
        }
        Some(ArtifactsAction::Pack(args)) => pack::pack(args, &common),
        Some(ArtifactsAction::Gc(args)) => gc::gc(args, &common),
    }
}

/// What every subcommand is given: the storage root and whether to print JSON.
#[derive(Debug)]
pub struct Common {
    pub root: PathBuf,
    pub json: bool,
}
