//! `runicorn-agent artifacts rm NAME:vN [--type T]`: deletes one version.

use anyhow::Context;
use runicorn_artifact_store::remove::remove_version;
use runicorn_cli::safe;
use serde_json::json;

use super::Common;

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// The version to delete, as NAME:vN (e.g. resnet:v2)
    #[arg(value_name = "NAME:vN")]
    pub reference: String,
    /// The artifact's type, when its name exists under several types
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
}

pub fn rm(args: RmArgs, common: &Common) -> anyhow::Result<u8> {
    let root = common.root.clone();
    let removed = remove_version(&root, &args.reference, args.kind.as_deref())
        .with_context(|| format!("cannot delete {}", args.reference))?;
    if common.json {
        println!(
            "{}",
            json!({
                "type": removed.kind,
                "name": removed.name,
                "version": removed.version,
                "aliases_dropped": removed.aliases_dropped,
                "latest": removed.latest,
                "artifact_removed": removed.artifact_removed,
            })
        );
    } else {
        let mut line = format!(
            "deleted {}/{}:v{}",
            safe(&removed.kind),
            safe(&removed.name),
            removed.version
        );
        if !removed.aliases_dropped.is_empty() {
            line.push_str(&format!(
                "; aliases dropped: {}",
                safe(&removed.aliases_dropped.join(", "))
            ));
        }
        match removed.latest {
            Some(latest) => line.push_str(&format!("; latest is v{latest}")),
            None if removed.artifact_removed => {
                line.push_str("; it was the last version, the artifact is gone")
            }
            None => {}
        }
        println!("{line}");
        println!("pool space is reclaimed by `runicorn-agent artifacts gc`");
    }
    Ok(0)
}
