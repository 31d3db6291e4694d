//! What the store holds of a run, read back as the files of its run directory, for bundle
//! exports: the records exactly as stored (JSON text), `events.jsonl` rebuilt from the stored
//! points (one `metrics` line per step and time, in step order, times kept, NaN and infinities
//! as Python's tokens), and the hub's own annotations of the run. The stored log bytes are
//! [`Store::log_text`] (`logs.rs`); the manifest and the cache are `files.rs`.

use std::io::Write;
use std::path::Path;

use rusqlite::OptionalExtension;

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::store::Store;

/// A run's records as the store holds them: the JSON text of each file, `None` when the run
/// had none. The configuration is not a file of its own: it is `assets.json`'s `config`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecordTexts {
    pub meta: Option<String>,
    pub status: Option<String>,
    pub summary: Option<String>,
    pub environment: Option<String>,
    pub assets: Option<String>,
}

impl RunRecordTexts {
    /// Each record with the name of its file in the run directory, those the run has.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        [
            ("meta.json", &self.meta),
            ("status.json", &self.status),
            ("summary.json", &self.summary),
            ("environment.json", &self.environment),
            ("assets.json", &self.assets),
        ]
        .into_iter()
        .filter_map(|(name, text)| text.as_deref().map(|t| (name, t)))
        .collect()
    }
}

/// The hub's own annotations of a run (never the run's own alias and tags): what the dashboard
/// and the CLI set, and whether the run is in the hub's recycle bin.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HubAnnotations {
    pub alias: Option<String>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<String>,
    pub in_recycle_bin: bool,
}

impl HubAnnotations {
    /// True when the hub added nothing to the run.
    pub fn is_empty(&self) -> bool {
        self.alias.is_none() && self.tags.is_none() && self.notes.is_none() && !self.in_recycle_bin
    }
}

/// What [`Store::write_events_jsonl`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventsWritten {
    pub lines: u64,
    pub points: u64,
    pub bytes: u64,
}

impl Store {
    /// Runs `read` inside one read transaction: every read sees the store as it was when the
    /// first one began (a sync committing meanwhile is seen entirely or not at all), so an
    /// export's records, points and logs agree with each other.
    pub fn with_snapshot<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn.execute_batch("BEGIN").at(&self.db_path)?;
        let result = read(self);
        // Ending a read transaction cannot lose anything; a failure here only means SQLite
        // ended it already.
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    /// The records of a run as stored; `None` when there is no such run.
    pub fn run_record_texts(&self, run: RunKey) -> Result<Option<RunRecordTexts>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT meta, status_record, summary, environment, assets FROM runs
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([run.0], |r| {
                    Ok(RunRecordTexts {
                        meta: r.get(0)?,
                        status: r.get(1)?,
                        summary: r.get(2)?,
                        environment: r.get(3)?,
                        assets: r.get(4)?,
                    })
                })
                .optional()
            })
            .at(&self.db_path)
    }

    /// The hub's annotations of a run; `None` when there is no such run.
    pub fn hub_annotations(&self, run: RunKey) -> Result<Option<HubAnnotations>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT user_alias, user_tags, notes, trashed_at IS NOT NULL FROM runs
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([run.0], |r| {
                    let tags: Option<String> = r.get(1)?;
                    Ok(HubAnnotations {
                        alias: r.get(0)?,
                        tags: tags.and_then(|t| serde_json::from_str(&t).ok()),
                        notes: r.get(2)?,
                        in_recycle_bin: r.get(3)?,
                    })
                })
                .optional()
            })
            .at(&self.db_path)
    }

    /// Writes the run's stored points to `out` as `events.jsonl` (`file` names it in errors):
    /// one `metrics` event per step and time, steps ascending, keys by name, the time as `ts`
    /// and `data.time` (both left out for points stored without one), NaN and infinities as
    /// `NaN`, `Infinity`, `-Infinity`. Read back, it gives exactly the stored points.
    pub fn write_events_jsonl(
        &self,
        run: RunKey,
        out: &mut impl Write,
        file: &Path,
    ) -> Result<EventsWritten, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.step, p.time, k.name, p.value FROM points p
                 JOIN metric_keys k ON k.id = p.key
                 WHERE p.run = ?1 ORDER BY p.step, p.time, k.name",
            )
            .at(p)?;
        let mut rows = stmt.query([run.0]).at(p)?;
        let io = |source| StoreError::Io {
            path: file.to_owned(),
            source,
        };
        let mut written = EventsWritten::default();
        let mut line = MetricsLine::default();
        while let Some(r) = rows.next().at(p)? {
            let step: i64 = r.get(0).at(p)?;
            let time: Option<f64> = r.get(1).at(p)?;
            let key: String = r.get(2).at(p)?;
            let value: Option<f64> = r.get(3).at(p)?;
            if !line.continues(step, time) {
                let n = line.finish(out).map_err(io)?;
                if n > 0 {
                    written.lines += 1;
                    written.bytes += n;
                }
                line.start(step, time);
            }
            line.push(&key, value);
            written.points += 1;
        }
        let last = line.finish(out).map_err(io)?;
        if last > 0 {
            written.lines += 1;
            written.bytes += last;
        }
        Ok(written)
    }
}

/// One `metrics` line being built: its step, time and the `"key": value` pairs so far.
#[derive(Default)]
struct MetricsLine {
    open: Option<(i64, Option<f64>)>,
    pairs: String,
}

impl MetricsLine {
    fn continues(&self, step: i64, time: Option<f64>) -> bool {
        self.open
            .is_some_and(|(s, t)| s == step && t.map(f64::to_bits) == time.map(f64::to_bits))
    }

    fn start(&mut self, step: i64, time: Option<f64>) {
        self.open = Some((step, time));
        self.pairs.clear();
    }

    fn push(&mut self, key: &str, value: Option<f64>) {
        // A key is a string: serialising it cannot fail.
        let key = serde_json::to_string(key).unwrap_or_default();
        self.pairs.push_str(&key);
        self.pairs.push_str(": ");
        self.pairs.push_str(&number(value.unwrap_or(f64::NAN)));
        self.pairs.push_str(", ");
    }

    /// Writes the line if one is open; returns its bytes (0 when none was).
    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<u64> {
        let Some((step, time)) = self.open.take() else {
            return Ok(0);
        };
        let text = match time {
            Some(t) => {
                let t = number(t);
                format!(
                    "{{\"ts\": {t}, \"type\": \"metrics\", \"data\": {{{}\"global_step\": {step}, \"time\": {t}}}}}\n",
                    self.pairs
                )
            }
            None => format!(
                "{{\"type\": \"metrics\", \"data\": {{{}\"global_step\": {step}}}}}\n",
                self.pairs
            ),
        };
        out.write_all(text.as_bytes())?;
        Ok(text.len() as u64)
    }
}

/// A number as the run format writes it: shortest round-trip form, Python's tokens for NaN and
/// the infinities.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "Infinity".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        // Finite: serde_json prints it (shortest round trip, `1.0` for whole numbers).
        serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "NaN".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::run_format::{scan_events, Event};

    #[test]
    fn numbers_round_trip_and_use_python_tokens() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "Infinity");
        assert_eq!(number(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(number(1.0), "1.0");
        for v in [0.1, 1e-300, 123456789.123, -2.5e17, 5e-324] {
            assert_eq!(number(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn lines_group_by_step_and_time_and_read_back() {
        let mut line = MetricsLine::default();
        let mut out = Vec::new();
        line.start(3, Some(1.5));
        line.push("a\"b", Some(0.5));
        line.push("loss", None);
        line.finish(&mut out).unwrap();
        line.start(4, None);
        line.push("acc", Some(f64::INFINITY));
        line.finish(&mut out).unwrap();
        assert_eq!(line.finish(&mut out).unwrap(), 0);
        let mut seen = Vec::new();
        scan_events(&out, 0, 1, |e| {
            if let Event::Metrics(m) = e {
                let values: Vec<(String, u64)> = m
                    .values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_bits()))
                    .collect();
                seen.push((m.step, m.time, values));
            }
        });
        assert_eq!(
            seen,
            [
                (
                    Some(3),
                    Some(1.5),
                    vec![
                        ("a\"b".to_owned(), 0.5f64.to_bits()),
                        ("loss".to_owned(), f64::NAN.to_bits())
                    ]
                ),
                (
                    Some(4),
                    None,
                    vec![("acc".to_owned(), f64::INFINITY.to_bits())]
                ),
            ]
        );
    }

    #[test]
    fn a_stored_run_reads_back_as_its_records_points_and_annotations() {
        use crate::testkit::{add_remote, change_batch, fresh_store, point_batch, run_change};
        let (_tmp, mut store) = fresh_store();
        let remote = add_remote(&mut store, "gpu");
        let dir = "runs/cv/r1";
        store
            .apply_change_batch(
                remote,
                &change_batch(true, vec![run_change(dir, 1, 100)], "e", 1, false),
            )
            .unwrap();
        store
            .ingest_points(remote, &point_batch(dir, 0, 100, 0..5))
            .unwrap();
        let key = store.run(remote, dir).unwrap().unwrap().key;

        let records = store.run_record_texts(key).unwrap().unwrap();
        let names: Vec<&str> = records.files().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["meta.json", "summary.json"]);
        assert_eq!(records.summary.as_deref(), Some(r#"{"acc":0.1}"#));

        assert!(store.hub_annotations(key).unwrap().unwrap().is_empty());
        store
            .annotate_run(
                key,
                &crate::RunAnnotation {
                    alias: Some(Some("best".into())),
                    tags: Some(Some(vec!["a".into()])),
                    notes: None,
                },
            )
            .unwrap();
        store.trash_run(key, 5.0).unwrap();
        let notes = store.hub_annotations(key).unwrap().unwrap();
        assert_eq!(
            notes,
            HubAnnotations {
                alias: Some("best".into()),
                tags: Some(vec!["a".into()]),
                notes: None,
                in_recycle_bin: true
            }
        );

        let mut out = Vec::new();
        let written = store
            .with_snapshot(|s| s.write_events_jsonl(key, &mut out, Path::new("events.jsonl")))
            .unwrap();
        let mut again = Vec::new();
        store
            .write_events_jsonl(key, &mut again, Path::new("events.jsonl"))
            .unwrap();
        assert_eq!(out, again, "the same outside a snapshot");
        assert_eq!((written.lines, written.points), (5, 10));
        assert_eq!(written.bytes, out.len() as u64);
        let mut points = Vec::new();
        scan_events(&out, 0, 1, |e| {
            if let Event::Metrics(m) = e {
                for (k, v) in &m.values {
                    points.push((k.to_string(), m.step.unwrap(), m.time.unwrap(), *v));
                }
            }
        });
        let mut stored = Vec::new();
        for k in ["k0", "k1"] {
            for (step, time, value) in store.points(key, k).unwrap() {
                stored.push((k.to_owned(), step, time, value));
            }
        }
        points.sort_by(|a, b| a.partial_cmp(b).unwrap());
        stored.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(points, stored);
        assert!(store.run_record_texts(RunKey(999)).unwrap().is_none());
    }
}
