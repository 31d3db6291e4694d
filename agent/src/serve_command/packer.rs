//! Packing while the agent serves: a thread that, after the scanner's full scans, turns whole
//! pool files of at least 4 MiB into chunks (`runicorn_artifact_store::pack::pack_next_idle`),
//! one content at a time and never waiting for the pool lock (it cuts holding the lock shared,
//! beside writers, and holds it exclusive only to remove the whole copies, so a writer waits
//! for a few unlinks at most), and asks the scanner to read the artifacts again after each one,
//! so the hub hears of `stored: chunked` at once.
//! `serve --no-pack` leaves it off.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use runicorn_artifact_store::pack::{pack_next_idle, PackStep};

use super::scanner::Trigger;

/// A whole pool file younger than this is left for a later pass (its writer may still be
/// between steps).
const MIN_AGE: Duration = Duration::from_secs(2);

/// Tells the packer thread to look (after a full scan).
#[derive(Clone)]
pub struct PackNudge(Sender<()>);

impl PackNudge {
    pub fn nudge(&self) {
        // A packer that ended (its thread failed to start or panicked) just means no packing.
        let _ = self.0.send(());
    }
}

/// Starts the packer; it tells the scanner through `scanner` after each packed content.
pub fn spawn_packer(root: PathBuf, scanner: Sender<Trigger>) -> std::io::Result<PackNudge> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("packer".into())
        .spawn(move || run(&root, &rx, &scanner))?;
    Ok(PackNudge(tx))
}

fn run(root: &std::path::Path, nudges: &Receiver<()>, scanner: &Sender<Trigger>) {
    let mut skip = HashSet::new();
    let mut last_error: Option<String> = None;
    while nudges.recv().is_ok() {
        // Scans that came while packing ask for one more pass, not one each.
        while nudges.try_recv().is_ok() {}
        loop {
            match pack_next_idle(root, MIN_AGE, &skip) {
                Ok(PackStep::Packed { .. }) => {
                    last_error = None;
                    if scanner.send(Trigger::Packed).is_err() {
                        return;
                    }
                }
                // Cut but still whole too (a writer held the lock): listed as chunked already;
                // its copies go at a later step.
                Ok(PackStep::Cut { .. }) => {
                    if scanner.send(Trigger::Packed).is_err() {
                        return;
                    }
                    break;
                }
                Ok(PackStep::Skipped { sha256, why }) => {
                    eprintln!("runicorn-agent serve: not packing {sha256}: {why}");
                    skip.insert(sha256);
                }
                // Busy: pack or gc holds the pool; the next scan asks again.
                Ok(PackStep::Nothing | PackStep::Busy) => break,
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        eprintln!(
                            "runicorn-agent serve: packing the artifact pool failed: {text}; trying again after the next scan (or run `runicorn-agent artifacts pack`)"
                        );
                        last_error = Some(text);
                    }
                    break;
                }
            }
        }
    }
}
