//! The sample runs of `runicorn-hub demo`, written with the Rust writer: a few finished and
//! failed experiments over several paths, and one run that keeps training while the demo runs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
        lr: 0.1,
        steps: 400,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "cv/resnet50",
        alias: "lr-0.03",
        lr: 0.03,
        steps: 400,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "cv/resnet50",
        alias: "lr-0.3",
        lr: 0.3,
        steps: 150,
        outcome: failed,
    },
    Recipe {
        path: "nlp/bert-base",
        alias: "warmup-1k",
        lr: 0.0001,
        steps: 600,
        outcome: RunOutcome::finished,
    },
    Recipe {
        path: "rl/ppo",
        alias: "seed-1",
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

fn start(root: &Path, path: &str, alias: &str, lr: f64) -> Result<RunWriter, WriteError> {
    let mut spec = RunSpec::new(root, WRITER);
    spec.path = Some(path.to_owned());
    spec.alias = Some(alias.to_owned());
    let mut w = RunWriter::create(&spec)?;
    w.log_config(Value::Object(config(lr, path)), json!({}), &[])?;
    w.set_primary_metric("val_acc", MetricGoal::Max);
    w.log_text(&format!("starting {path} ({alias}) with lr={lr}"))?;
    Ok(w)
}

/// Writes the finished and failed sample runs under `root`. Returns how many.
pub fn write_sample_runs(root: &Path) -> Result<usize, WriteError> {
    for r in RECIPES {
        let mut w = start(root, r.path, r.alias, r.lr)?;
        for step in 1..=r.steps {
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
        }
        let mut summary = Map::new();
        summary.insert("final_loss".into(), json!(curve(r.steps, r.lr).0));
        w.update_summary(summary)?;
        w.finish((r.outcome)())?;
    }
    Ok(RECIPES.len())
}

/// A run that logs a step every `interval` until `stop` is set, then finishes.
pub fn spawn_live_run(
    root: &Path,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<(), WriteError>>, WriteError> {
    let mut w = start(root, "cv/vit-small", "live", 0.05)?;
    Ok(std::thread::spawn(move || {
        let mut step = 0;
        while !stop.load(Ordering::Relaxed) {
            step += 1;
            let (loss, acc) = curve(step, 0.05);
            w.log_metrics(&[("train_loss", loss), ("val_acc", acc)], Some(step), None)?;
            if step % 5 == 0 {
                w.log_text(&format!("step {step}: loss {loss:.4}"))?;
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
        assert_eq!(write_sample_runs(t.path()).unwrap(), RECIPES.len());
        let found = runicorn_protocol::run_format::discover_runs(t.path());
        assert_eq!(found.runs.len(), RECIPES.len());
    }
}
