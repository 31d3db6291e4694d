//! The Rust writer's calls beyond metrics and text, matching the Python SDK's: images under
//! `media/`, the configuration in `assets.json`, and the primary metric whose best value goes to
//! the summary when the run ends.

use std::fs;

use serde_json::{json, Map, Value};

use super::{io_at, write_f64, write_json_str, RunWriter, WriteError};
use crate::run_format::json_file::{read_json_if_exists, write_atomic, write_json_atomic};
use crate::run_format::names::{check_file_name_for_write, sanitize_file_fragment};

/// Which way a primary metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricGoal {
    Max,
    Min,
}

impl MetricGoal {
    fn as_str(self) -> &'static str {
        match self {
            MetricGoal::Max => "max",
            MetricGoal::Min => "min",
        }
    }

    fn improves(self, candidate: f64, best: f64) -> bool {
        match self {
            MetricGoal::Max => candidate > best,
            MetricGoal::Min => candidate < best,
        }
    }
}

/// The primary metric and its best value so far.
#[derive(Debug, Clone)]
pub(super) struct PrimaryMetric {
    name: String,
    goal: MetricGoal,
    best: Option<(f64, i64)>,
}

impl PrimaryMetric {
    /// Looks at one logged step's values.
    pub(super) fn observe(&mut self, values: &[(&str, f64)], step: i64) {
        let Some((_, v)) = values.iter().find(|(k, _)| *k == self.name) else {
            return;
        };
        if !v.is_finite() {
            return;
        }
        if self
            .best
            .is_none_or(|(best, _)| self.goal.improves(*v, best))
        {
            self.best = Some((*v, step));
        }
    }

    /// The `best_metric_*` summary keys upstream writes at finish.
    pub(super) fn summary_update(&self) -> Option<Map<String, Value>> {
        let (value, step) = self.best?;
        let v = json!({
            "best_metric_value": value,
            "best_metric_name": self.name,
            "best_metric_step": step,
            "best_metric_mode": self.goal.as_str(),
        });
        v.as_object().cloned()
    }
}

impl RunWriter {
    /// Tracks `name`'s best value; `best_metric_*` are written to the summary at `finish`.
    pub fn set_primary_metric(&mut self, name: &str, goal: MetricGoal) {
        self.primary = Some(PrimaryMetric {
            name: name.to_owned(),
            goal,
            best: None,
        });
    }

    /// Saves an encoded image (PNG, JPEG, …) as `media/<epoch_ms>_<6 hex>_<key>.<ext>` and logs
    /// an `image` event. Returns the file's path relative to the run directory.
    pub fn log_image(
        &mut self,
        key: &str,
        encoded: &[u8],
        extension: &str,
        step: Option<i64>,
        caption: Option<&str>,
    ) -> Result<String, WriteError> {
        let now = self.now();
        let file_name = format!(
            "{}_{:06x}_{}.{}",
            (now * 1000.0) as u64,
            fastrand::u32(..0x0100_0000),
            sanitize_file_fragment(key),
            sanitize_file_fragment(extension)
        );
        check_file_name_for_write(&file_name)?;
        let media = self.files.media_dir();
        fs::create_dir_all(&media).map_err(io_at(&media))?;
        let path = media.join(&file_name);
        write_atomic(&path, encoded).map_err(io_at(&path))?;
        let relative = format!("media/{file_name}");

        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"ts\": ");
        write_f64(line, now);
        line.extend_from_slice(b", \"type\": \"image\", \"data\": {\"key\": ");
        write_json_str(line, key);
        line.extend_from_slice(b", \"path\": ");
        write_json_str(line, &relative);
        line.extend_from_slice(b", \"step\": ");
        line.extend_from_slice(
            step.map_or_else(|| "null".to_owned(), |s| s.to_string())
                .as_bytes(),
        );
        line.extend_from_slice(b", \"caption\": ");
        match caption {
            Some(c) => write_json_str(line, c),
            None => line.extend_from_slice(b"null"),
        }
        line.extend_from_slice(b"}}\n");
        self.append_event_line()?;
        Ok(relative)
    }

    /// Records the run's configuration in `assets.json` (`config.args`, `config.extra`,
    /// `config.config_files`), keeping whatever else the file holds.
    pub fn log_config(
        &mut self,
        args: Value,
        extra: Value,
        config_files: &[String],
    ) -> Result<(), WriteError> {
        let path = self.files.assets();
        let mut assets: Map<String, Value> = read_json_if_exists(&path)
            .ok()
            .flatten()
            .unwrap_or_default();
        for (key, empty) in [
            ("code", json!({})),
            ("datasets", json!([])),
            ("pretrained", json!([])),
            ("outputs", json!([])),
        ] {
            assets.entry(key).or_insert(empty);
        }
        assets.insert(
            "config".into(),
            json!({"args": args, "extra": extra, "config_files": config_files}),
        );
        write_json_atomic(&path, &assets).map_err(io_at(&path))
    }
}
