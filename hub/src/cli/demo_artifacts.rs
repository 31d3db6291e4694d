//! The sample artifacts of `runicorn-hub demo`, logged with the Rust writer
//! (`runicorn_artifact_store::writer`): a dataset the image runs use, and a model with three
//! versions whose `best` alias moves, produced by one run and used by another. The model's
//! weights file is large enough to be kept as chunks, and its versions share most of them, so
//! the Artifacts page has bytes saved to show.

use std::path::Path;

use anyhow::Context;
use runicorn_artifact_store::writer::{
    log_artifact, log_artifact_with, use_artifact, Artifact, LogOptions,
};
use serde_json::{json, Map, Value};

use super::demo_runs::SampleRun;

/// Size of the sample weights: above `CHUNKED_MIN_FILE_BYTES` (4 MiB) so they are chunked.
const WEIGHTS_BYTES: usize = 5 * 1024 * 1024;
/// Each new model version rewrites this many 64 KiB windows of the weights (about 10 %).
const CHANGED_WINDOWS: u64 = 8;
const WINDOW: usize = 64 * 1024;

/// Counts what [`write_sample_artifacts`] logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub artifacts: usize,
    pub versions: usize,
}

/// A reproducible byte stream (xorshift64*), standing in for trained weights.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
    fn below(&mut self, bound: u64) -> u64 {
        let mut word = [0u8; 8];
        self.fill(&mut word);
        u64::from_le_bytes(word) % bound.max(1)
    }
}

/// Rewrites [`CHANGED_WINDOWS`] windows of `weights` at places chosen by `noise`.
fn train_a_little(weights: &mut [u8], noise: &mut Noise) {
    let windows = (weights.len() / WINDOW) as u64;
    for _ in 0..CHANGED_WINDOWS {
        // In range: the window index is below len / WINDOW.
        let start = noise.below(windows) as usize * WINDOW;
        noise.fill(&mut weights[start..start + WINDOW]);
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

fn metadata(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn run<'a>(runs: &'a [SampleRun], alias: &str) -> Option<&'a SampleRun> {
    runs.iter().find(|r| r.alias == alias)
}

/// Logs the sample artifacts under `root`, linking them to `runs` (from `write_sample_runs`);
/// `staging` is a scratch directory for the files before they enter the pool.
pub fn write_sample_artifacts(
    root: &Path,
    staging: &Path,
    runs: &[SampleRun],
) -> anyhow::Result<Logged> {
    create_dir(staging)?;
    let link = |alias: &str| run(runs, alias).map(|r| r.link.clone());

    // The dataset: one version, used by every image run.
    let data = staging.join("dataset");
    create_dir(&data)?;
    let mut train = String::from("image,label\n");
    let mut test = String::from("image,label\n");
    for i in 0..400 {
        train.push_str(&format!("train/{i:05}.png,{}\n", i % 10));
        if i % 4 == 0 {
            test.push_str(&format!("test/{i:05}.png,{}\n", (i / 4) % 10));
        }
    }
    write(&data.join("train.csv"), train.as_bytes())?;
    write(&data.join("test.csv"), test.as_bytes())?;
    write(
        &data.join("labels.json"),
        br#"["airplane","automobile","bird","cat","deer","dog","frog","horse","ship","truck"]"#,
    )?;
    let mut dataset = Artifact::new("cifar10-sample", "dataset")?
        .with_description("A small labelled image list (demo)")
        .with_metadata(metadata(json!({"images": 500, "classes": 10})));
    dataset.add_dir(&data, None, &[])?;
    log_artifact(root, &dataset, &[], None)?;
    for alias in ["baseline", "lr-0.03", "lr-0.3"] {
        if let Some(using) = link(alias) {
            use_artifact(root, "cifar10-sample:latest", Some("dataset"), Some(using))?;
        }
    }

    // The model: v1 by the baseline (best), v2 and v3 by lr-0.03 (best moves to v2).
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut weights = vec![0u8; WEIGHTS_BYTES];
    noise.fill(&mut weights);
    let versions: [(&str, &[&str], f64, f64); 3] = [
        ("baseline", &["best"], 0.1, 0.81),
        ("lr-0.03", &["best"], 0.03, 0.86),
        ("lr-0.03", &[], 0.03, 0.85),
    ];
    for (i, (producer, aliases, lr, acc)) in versions.iter().enumerate() {
        if i > 0 {
            train_a_little(&mut weights, &mut noise);
        }
        let dir = staging.join(format!("model-{i}"));
        create_dir(&dir)?;
        write(&dir.join("weights.bin"), &weights)?;
        let config = json!({"arch": "resnet50", "lr": lr, "epoch": 10 * (i + 1)});
        write(&dir.join("config.json"), config.to_string().as_bytes())?;
        let mut model = Artifact::new("resnet50", "model")?
            .with_description("ResNet-50 checkpoint (demo)")
            .with_metadata(metadata(json!({"val_acc": acc, "lr": lr})));
        model.add_file(&dir.join("weights.bin"), None)?;
        model.add_file(&dir.join("config.json"), None)?;
        // Straight into chunks, so the dashboard shows what dedup saves without waiting for
        // the agent to pack the checkpoints.
        let chunked = LogOptions {
            chunk_large_files: true,
        };
        log_artifact_with(root, &model, aliases, link(producer), &chunked)?;
    }
    // The failed run warm-started from the first checkpoint.
    if let Some(using) = link("lr-0.3") {
        use_artifact(root, "resnet50:v1", Some("model"), Some(using))?;
    }
    Ok(Logged {
        artifacts: 2,
        versions: 4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_artifact_store::listing::{artifact_dirs, read_artifact};

    #[test]
    fn the_sample_artifacts_have_versions_aliases_and_lineage() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let runs = super::super::demo_runs::write_sample_runs(&root).unwrap();
        let logged = write_sample_artifacts(&root, &t.path().join("staging"), &runs).unwrap();
        assert_eq!(logged.artifacts, 2);
        let dirs = artifact_dirs(&root);
        assert_eq!(dirs.len(), 2, "{dirs:?}");
        let model = dirs
            .iter()
            .map(|(kind, name)| read_artifact(&root, kind, name))
            .find(|a| a.name == "resnet50")
            .unwrap();
        assert_eq!(model.versions.len(), 3);
        assert_eq!(model.aliases.get("best"), Some(&2));
        assert_eq!(model.aliases.get("latest"), Some(&3));
        let weights = model.versions[0]
            .files
            .iter()
            .find(|f| f.path == "weights.bin")
            .unwrap();
        assert_eq!(weights.size, WEIGHTS_BYTES as u64);
        assert_eq!(
            format!("{:?}", weights.stored).to_lowercase(),
            "chunked",
            "{weights:?}"
        );
        assert!(model.versions[0].produced_by.is_some());
        assert_eq!(model.versions[0].used_by.len(), 1, "lr-0.3 used v1");
    }
}
