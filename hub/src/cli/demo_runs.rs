//! The sample runs of `runicorn-hub demo`, written with the Rust writer: a few finished and
//! failed experiments over several paths, and one run that keeps training while the demo runs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runicorn_protocol::run_format::artifacts::RunLink;
use runicorn_protocol::run_format::{
    MetricGoal, RunOutcome, RunSpec, RunStatus, RunWriter, WriteError,
};
use serde_json::{json, Map, Value};

const WRITER: &str = concat!("runicorn-hub-demo/", env!("CARGO_PKG_VERSION"));

/// One finished sample run's recipe.
struct Recipe {
    path: &'static str,
    alias: &'static str,
    lr: f64,
    steps: i64,
    /// When the run started, and how long a step took: the sample runs are written in a
    /// moment but dated as if they had trained for real.
    hours_ago: f64,
    seconds_per_step: f64,
    outcome: fn() -> RunOutcome,
}

fn failed() -> RunOutcome {
    RunOutcome {
        status: RunStatus::Failed,
        exit_code: Some(1),
        signal: None,
        reason: Some("exception: RuntimeError".into()),
    }
}

const RECIPES: &[Recipe] = &[
    Recipe {
        path: "cv/resnet50",
        alias: "baseline",
        hours_ago: 26.0,
        seconds_per_step: 3.0,
        lr: 0.1,
        steps: 400,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "cv/resnet50",
        alias: "lr-0.03",
        hours_ago: 25.5,
        seconds_per_step: 3.0,
        lr: 0.03,
        steps: 400,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "cv/resnet50",
        alias: "lr-0.3",
        hours_ago: 25.0,
        seconds_per_step: 3.0,
        lr: 0.3,
        steps: 150,
        outcome: failed,
    },
    Recipe {
        path: "nlp/bert-base",
        alias: "warmup-1k",
        hours_ago: 7.0,
        seconds_per_step: 6.0,
        lr: 0.0001,
        steps: 600,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "rl/ppo",
        alias: "seed-1",
        hours_ago: 2.5,
        seconds_per_step: 2.0,
        lr: 0.0003,
        steps: 300,
        outcome: RunOutcome::finished,
    },
];

fn config(lr: f64, path: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("lr".into(), json!(lr));
    m.insert("batch_size".into(), json!(128));
    m.insert(
        "optimizer".into(),
        json!(if path.starts_with("nlp") {
            "adamw"
        } else {
            "sgd"
        }),
    );
    m
}

/// Loss and accuracy of a pretend training curve at `step`.
fn curve(step: i64, lr: f64) -> (f64, f64) {
    let x = step as f64;
    let rate = (lr * 40.0).clamp(0.2, 4.0);
    let loss = 2.3 * (-x * rate / 300.0).exp() + 0.05 + 0.02 * (x * 0.7).sin();
    let acc = (1.0 - loss / 2.4).clamp(0.0, 1.0);
    (loss, acc)
}

fn start(
    root: &Path,
    path: &str,
    alias: &str,
    lr: f64,
    hours_ago: f64,
) -> Result<RunWriter, WriteError> {
    let mut spec = RunSpec::new(root, WRITER);
    spec.clock_offset = -hours_ago * 3600.0;
    spec.path = Some(path.to_owned());
    spec.alias = Some(alias.to_owned());
    let mut w = RunWriter::create(&spec)?;
    w.log_config(Value::Object(config(lr, path)), json!({}), &[])?;
    w.set_primary_metric("val_acc", MetricGoal::Max);
    w.log_text(&format!("starting {path} ({alias}) with lr={lr}"))?;
    Ok(w)
}

/// A small PNG (a smooth pattern that changes with the step and learning rate) standing in for
/// a model's prediction, so the run page has images to show.
fn sample_image(step: i64, lr: f64) -> Vec<u8> {
    const SIZE: u32 = 64;
    let mut pixels = Vec::with_capacity((SIZE * SIZE * 3) as usize);
    let phase = step as f64 / 100.0 + lr * 10.0;
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (f64::from(x) / 8.0, f64::from(y) / 8.0);
            let v = ((fx + phase).sin() * (fy - phase).cos() + 1.0) / 2.0;
            // Truncation to a byte is the intent: v is in [0, 1].
            pixels.extend_from_slice(&[
                (v * 255.0) as u8,
                (fx * 30.0) as u8,
                ((1.0 - v) * 200.0) as u8,
            ]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, SIZE, SIZE);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Encoding a well-formed in-memory RGB buffer into a Vec cannot fail; an empty image would
    // only mean a missing thumbnail in the demo.
    if let Ok(mut writer) = encoder.write_header() {
        if writer.write_image_data(&pixels).is_err() {
            return Vec::new();
        }
    }
    out
}

/// One written sample run: its alias and where it is, for the sample artifacts' lineage.
#[derive(Debug, Clone)]
pub struct SampleRun {
    pub alias: &'static str,
    pub link: RunLink,
}

/// Writes the finished and failed sample runs under `root`. Returns them in recipe order.
pub fn write_sample_runs(root: &Path) -> Result<Vec<SampleRun>, WriteError> {
    let mut written = Vec::with_capacity(RECIPES.len());
    for r in RECIPES {
        let mut w = start(root, r.path, r.alias, r.lr, r.hours_ago)?;
        for step in 1..=r.steps {
            w.advance_clock(r.seconds_per_step);
            let (loss, acc) = curve(step, r.lr);
            w.log_metrics(
                &[("train_loss", loss), ("lr", r.lr)],
                Some(step),
                Some("train"),
            )?;
            if step % 10 == 0 {
                w.log_metrics(&[("val_acc", acc)], Some(step), Some("val"))?;
                w.log_text(&format!("step {step}: loss {loss:.4} val_acc {acc:.4}"))?;
            }
            if step % 100 == 0 {
                let png = sample_image(step, r.lr);
                w.log_image(
                    "prediction",
                    &png,
                    "png",
                    Some(step),
                    Some("pretend prediction"),
                )?;
            }
        }
        let mut summary = Map::new();
        summary.insert("final_loss".into(), json!(curve(r.steps, r.lr).0));
        w.update_summary(summary)?;
        w.finish((r.outcome)())?;
        let dir = w.dir().strip_prefix(root).unwrap_or(w.dir());
        written.push(SampleRun {
            alias: r.alias,
            link: RunLink {
                run_id: w.id().to_owned(),
                dir: dir.to_string_lossy().replace('\\', "/"),
                host: None,
            },
        });
    }
    Ok(written)
}

/// A run that logs a step every `interval` until `stop` is set, then finishes.
pub fn spawn_live_run(
    root: &Path,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<(), WriteError>>, WriteError> {
    let mut w = start(root, "cv/vit-small", "live", 0.05, 0.0)?;
    Ok(std::thread::spawn(move || {
        let mut step = 0;
        while !stop.load(Ordering::Relaxed) {
            step += 1;
            let (loss, acc) = curve(step, 0.05);
            w.log_metrics(&[("train_loss", loss), ("val_acc", acc)], Some(step), None)?;
            // Coloured like a real training log, so the log viewer shows its ANSI support.
            w.log_text(&format!(
                "\x1b[32mstep {step}\x1b[0m loss \x1b[1m{loss:.4}\x1b[0m val_acc \x1b[36m{acc:.4}\x1b[0m"
            ))?;
            if step % 20 == 0 {
                w.log_text("\x1b[33mwarning:\x1b[0m pretend checkpoint skipped (demo)")?;
            }
            w.flush()?;
            std::thread::sleep(interval);
        }
        w.finish(RunOutcome::finished())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_runs_are_listed_by_the_reader() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(write_sample_runs(t.path()).unwrap().len(), RECIPES.len());
        let found = runicorn_protocol::run_format::discover_runs(t.path());
        assert_eq!(found.runs.len(), RECIPES.len());
    }
}
