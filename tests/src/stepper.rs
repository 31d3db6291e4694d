//! A run whose writer stays alive and steps on demand: it logs a `loss` step every 0.2 s while
//! stepping is on and heartbeats all along, so pausing it makes it `stalled` (never `crashed`).
//! The stall and alert tests drive it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter, StallConfig};

/// Time between two steps (and heartbeats).
pub const STEP_EVERY: Duration = Duration::from_millis(200);

pub struct Stepper {
    stepping: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stepper {
    /// Starts run `stepper` under `path` in `root`, stepping, with `stall: {factor: 5, after_s}`.
    pub fn start(root: &Path, path: &str, stall_after_s: f64) -> Stepper {
        let mut spec = RunSpec::new(root, "runicorn-tests");
        spec.path = Some(path.into());
        spec.run_id = Some("stepper".into());
        spec.heartbeat_interval = 1.0;
        spec.stall = StallConfig::new(Some(5.0), Some(stall_after_s));
        let mut writer = RunWriter::create(&spec).unwrap();
        let stepping = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&stepping), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut loss = 1.0;
            while !st.load(Ordering::SeqCst) {
                if s.load(Ordering::SeqCst) {
                    loss *= 0.99;
                    writer.log_metrics(&[("loss", loss)], None, None).unwrap();
                    writer.flush().unwrap();
                }
                writer.heartbeat().unwrap();
                std::thread::sleep(STEP_EVERY);
            }
            writer.finish(RunOutcome::finished()).unwrap();
        });
        Stepper {
            stepping,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_stepping(&self, on: bool) {
        self.stepping.store(on, Ordering::SeqCst);
    }

    /// Stops the writer and records the run `finished`.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Stepper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
