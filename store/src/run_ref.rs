//! Run references: the one way a person names a run, on the command line, in a URL or in a
//! script, and its resolution to the run's key in this store.
//!
//! A reference is one of three forms, told apart by its text alone ([`RunRef::parse`]):
//!
//! - all digits: the hub's key of the run (`42`, what the API's `key` holds);
//! - `REMOTE/RUN_ID`: the run with that run id on that remote (`gpu1/20261202_150537_a4f9e9`);
//! - anything else: the run's own id (`20261202_150537_a4f9e9`), on whichever remote has it.
//!
//! [`Store::resolve_run`] finds the run. Every run in the store counts, whatever its state (in
//! the recycle bin, gone from its server, soft-deleted upstream): the run's page shows those
//! too. A run id held by several runs is [`RunRefError::Ambiguous`], listing each of them.

use std::fmt;

use rusqlite::OptionalExtension;

use crate::error::SqliteContext;
use crate::{RunKey, Store, StoreError};

/// Longest reference accepted, in bytes (as long as any text parameter of the API).
pub const MAX_RUN_REF_BYTES: usize = 1024;

/// A run as a person names it; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRef {
    /// All digits: a key; when no run has it, the run id spelled the same (`text`).
    Key { key: RunKey, text: String },
    /// The run's own id, on any remote.
    RunId(String),
    /// The run with this run id on this remote.
    OnRemote { remote: String, run_id: String },
}

/// A run that a reference may mean: its key, its remote's name and its run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCandidate {
    pub key: RunKey,
    pub remote: String,
    pub run_id: String,
}

impl fmt::Display for RunCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} (key {})", self.remote, self.run_id, self.key.0)
    }
}

/// Why a reference names no single run.
#[derive(Debug, thiserror::Error)]
pub enum RunRefError {
    #[error(
        "run reference {text:?} is not usable: {reason}; name a run by its key (42), its run id \
         (20261202_150537_a4f9e9) or REMOTE/RUN_ID"
    )]
    Malformed { text: String, reason: &'static str },

    #[error("{}", not_found_message(reference, *remote_known))]
    NotFound {
        reference: RunRef,
        /// False when the reference names a remote the store does not know.
        remote_known: bool,
    },

    #[error("{}", ambiguous_message(reference, candidates))]
    Ambiguous {
        reference: RunRef,
        /// Every run the reference may mean, by remote name then key.
        candidates: Vec<RunCandidate>,
    },

    #[error(transparent)]
    Store(#[from] StoreError),
}

fn not_found_message(reference: &RunRef, remote_known: bool) -> String {
    let (named, why) = match reference {
        RunRef::Key { key, .. } => (
            key.0.to_string(),
            "no run has that key or run id".to_owned(),
        ),
        RunRef::RunId(run_id) => (format!("{run_id:?}"), "no run has that run id".to_owned()),
        RunRef::OnRemote { remote, .. } if remote_known => (
            format!("{:?}", reference.to_string()),
            format!("remote {remote:?} has no run with that run id"),
        ),
        RunRef::OnRemote { remote, .. } => (
            format!("{:?}", reference.to_string()),
            format!("there is no remote named {remote:?}"),
        ),
    };
    format!("no run {named} in the hub's store ({why}); list the runs with `runicorn-hub ls`")
}

fn ambiguous_message(reference: &RunRef, candidates: &[RunCandidate]) -> String {
    let list: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    format!(
        "run reference {:?} names {} runs: {}; use one of them (REMOTE/RUN_ID or the key)",
        reference.to_string(),
        candidates.len(),
        list.join(", ")
    )
}

impl RunRef {
    /// Reads a reference. Empty text, one longer than [`MAX_RUN_REF_BYTES`], control
    /// characters, or a `/` that does not split two non-empty names are refused.
    pub fn parse(text: &str) -> Result<RunRef, RunRefError> {
        let malformed = |reason| RunRefError::Malformed {
            text: text.chars().take(100).collect(),
            reason,
        };
        if text.is_empty() {
            return Err(malformed("it is empty"));
        }
        if text.len() > MAX_RUN_REF_BYTES {
            return Err(malformed("it is longer than 1,024 bytes"));
        }
        if text.chars().any(char::is_control) {
            return Err(malformed("it holds a control character"));
        }
        if let Some((remote, run_id)) = text.split_once('/') {
            if remote.is_empty() || run_id.is_empty() || run_id.contains('/') {
                return Err(malformed(
                    "a `/` must separate a remote's name and a run id",
                ));
            }
            return Ok(RunRef::OnRemote {
                remote: remote.to_owned(),
                run_id: run_id.to_owned(),
            });
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than an i64 holds cannot be a key; it may still be a run id.
            if let Ok(key) = text.parse::<i64>() {
                return Ok(RunRef::Key {
                    key: RunKey(key),
                    text: text.to_owned(),
                });
            }
        }
        Ok(RunRef::RunId(text.to_owned()))
    }
}

impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunRef::Key { text, .. } => f.write_str(text),
            RunRef::RunId(run_id) => f.write_str(run_id),
            RunRef::OnRemote { remote, run_id } => write!(f, "{remote}/{run_id}"),
        }
    }
}

impl std::str::FromStr for RunRef {
    type Err = RunRefError;

    fn from_str(text: &str) -> Result<RunRef, RunRefError> {
        RunRef::parse(text)
    }
}

impl Store {
    /// The key of the one run `reference` names; see the module documentation.
    pub fn resolve_run(&self, reference: &RunRef) -> Result<RunKey, RunRefError> {
        let (candidates, remote) = match reference {
            RunRef::Key { key, text } => {
                if self.run_key_exists(*key)? {
                    return Ok(*key);
                }
                (self.runs_with_run_id(text, None)?, None)
            }
            RunRef::RunId(run_id) => (self.runs_with_run_id(run_id, None)?, None),
            RunRef::OnRemote { remote, run_id } => (
                self.runs_with_run_id(run_id, Some(remote))?,
                Some(remote.as_str()),
            ),
        };
        match candidates.as_slice() {
            [one] => Ok(one.key),
            [] => Err(RunRefError::NotFound {
                reference: reference.clone(),
                remote_known: match remote {
                    Some(name) => self.remote_name_exists(name)?,
                    None => true,
                },
            }),
            _ => Err(RunRefError::Ambiguous {
                reference: reference.clone(),
                candidates,
            }),
        }
    }

    fn run_key_exists(&self, key: RunKey) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row([key.0], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .at(&self.db_path)
    }

    fn remote_name_exists(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM remotes WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .at(&self.db_path)
    }

    /// Every run with this run id (on this remote when given), by remote name then key. The
    /// scan reads the `runs_listing` index, which holds `run_id`, not the run rows: about 1.8 ms
    /// at 50,000 runs (release build), against 2 µs for a key. An index on `runs(run_id)` would
    /// make it a lookup; it needs a migration.
    fn runs_with_run_id(
        &self,
        run_id: &str,
        remote: Option<&str>,
    ) -> Result<Vec<RunCandidate>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT r.id, m.name, r.run_id FROM runs r JOIN remotes m ON m.id = r.remote
                 WHERE r.run_id = ?1 AND (?2 IS NULL OR m.name = ?2)
                 ORDER BY m.name, r.id",
            )
            .and_then(|mut s| {
                s.query_map(rusqlite::params![run_id, remote], |row| {
                    Ok(RunCandidate {
                        key: RunKey(row.get(0)?),
                        remote: row.get(1)?,
                        run_id: row.get(2)?,
                    })
                })?
                .collect()
            })
            .at(&self.db_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{add_remote, change_batch, fresh_store, run_change};

    fn key(text: &str) -> RunRef {
        RunRef::Key {
            key: RunKey(text.parse().unwrap()),
            text: text.into(),
        }
    }

    #[test]
    fn the_text_alone_tells_the_form() {
        assert_eq!(RunRef::parse("42").unwrap(), key("42"));
        assert_eq!(RunRef::parse("007").unwrap(), key("007"));
        assert_eq!(
            RunRef::parse("20261202_150537_a4f9e9").unwrap(),
            RunRef::RunId("20261202_150537_a4f9e9".into())
        );
        assert_eq!(
            RunRef::parse("gpu1/20261202_150537_a4f9e9").unwrap(),
            RunRef::OnRemote {
                remote: "gpu1".into(),
                run_id: "20261202_150537_a4f9e9".into()
            }
        );
        assert_eq!(
            RunRef::parse("gpu1/42").unwrap(),
            RunRef::OnRemote {
                remote: "gpu1".into(),
                run_id: "42".into()
            }
        );
        // Too many digits for a key: only a run id can be meant.
        let long = "9".repeat(30);
        assert_eq!(RunRef::parse(&long).unwrap(), RunRef::RunId(long.clone()));
        assert_eq!(RunRef::parse("-1").unwrap(), RunRef::RunId("-1".into()));
        for text in ["gpu1/x", "42", "abc"] {
            assert_eq!(RunRef::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_references_say_why_and_what_to_write() {
        for (text, why) in [
            ("", "empty"),
            ("/x", "`/`"),
            ("gpu1/", "`/`"),
            ("a/b/c", "`/`"),
            ("a\nb", "control"),
        ] {
            let e = RunRef::parse(text).unwrap_err();
            assert!(matches!(e, RunRefError::Malformed { .. }), "{text:?}: {e}");
            let message = e.to_string();
            assert!(message.contains(why), "{message}");
            assert!(message.contains("REMOTE/RUN_ID"), "{message}");
        }
        let e = RunRef::parse(&"x".repeat(MAX_RUN_REF_BYTES + 1)).unwrap_err();
        assert!(e.to_string().contains("1,024"), "{e}");
        assert!(RunRef::parse(&"x".repeat(MAX_RUN_REF_BYTES)).is_ok());
    }

    /// gpu1 holds `shared` and `only1`; gpu2 holds `shared` (twice: two directories) and a run
    /// whose id is all digits; the second `shared` of gpu2 is in the recycle bin.
    fn two_remotes() -> (tempfile::TempDir, Store, Vec<RunKey>) {
        let (tmp, mut store) = fresh_store();
        let gpu1 = add_remote(&mut store, "gpu1");
        let gpu2 = add_remote(&mut store, "gpu2");
        let runs = vec![
            run_change("runs/a/shared", 1, 10),
            run_change("runs/a/only1", 2, 10),
        ];
        store
            .apply_change_batch(gpu1, &change_batch(true, runs, "e1", 2, false))
            .unwrap();
        let runs = vec![
            run_change("runs/a/shared", 1, 10),
            run_change("runs/b/shared", 2, 10),
            run_change("runs/a/987654", 3, 10),
        ];
        store
            .apply_change_batch(gpu2, &change_batch(true, runs, "e2", 3, false))
            .unwrap();
        let find = |remote, dir| store.run(remote, dir).unwrap().unwrap().key;
        let keys = vec![
            find(gpu1, "runs/a/shared"),
            find(gpu1, "runs/a/only1"),
            find(gpu2, "runs/a/shared"),
            find(gpu2, "runs/b/shared"),
            find(gpu2, "runs/a/987654"),
        ];
        store.trash_run(keys[3], 5.0).unwrap().unwrap();
        (tmp, store, keys)
    }

    fn resolve(store: &Store, text: &str) -> Result<RunKey, RunRefError> {
        store.resolve_run(&RunRef::parse(text).unwrap())
    }

    #[test]
    fn each_form_resolves_to_its_run() {
        let (_tmp, store, keys) = two_remotes();
        assert_eq!(resolve(&store, &keys[1].0.to_string()).unwrap(), keys[1]);
        assert_eq!(resolve(&store, "only1").unwrap(), keys[1]);
        assert_eq!(resolve(&store, "gpu1/only1").unwrap(), keys[1]);
        assert_eq!(resolve(&store, "gpu1/shared").unwrap(), keys[0]);
        // A run in the recycle bin resolves like any other.
        assert_eq!(resolve(&store, &keys[3].0.to_string()).unwrap(), keys[3]);
        // Digits that are no key fall back to a run id spelled the same.
        assert_eq!(resolve(&store, "987654").unwrap(), keys[4]);
        assert_eq!(resolve(&store, "gpu2/987654").unwrap(), keys[4]);
    }

    #[test]
    fn an_ambiguous_reference_lists_every_candidate() {
        let (_tmp, store, keys) = two_remotes();
        let e = resolve(&store, "shared").unwrap_err();
        let RunRefError::Ambiguous { candidates, .. } = &e else {
            panic!("{e}");
        };
        let listed: Vec<(RunKey, &str)> = candidates
            .iter()
            .map(|c| (c.key, c.remote.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![(keys[0], "gpu1"), (keys[2], "gpu2"), (keys[3], "gpu2")]
        );
        let message = e.to_string();
        assert!(message.contains("names 3 runs"), "{message}");
        assert!(
            message.contains(&format!("gpu1/shared (key {})", keys[0].0)),
            "{message}"
        );
        assert!(message.contains("use one of them"), "{message}");
        // Two directories of one remote with the same run id: only the key tells them apart.
        let e = resolve(&store, "gpu2/shared").unwrap_err();
        assert!(
            matches!(&e, RunRefError::Ambiguous { candidates, .. } if candidates.len() == 2),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_reference_says_how_to_list_runs() {
        let (_tmp, store, _keys) = two_remotes();
        for (text, says) in [
            (
                "nope",
                "no run \"nope\" in the hub's store (no run has that run id)",
            ),
            (
                "424242",
                "no run 424242 in the hub's store (no run has that key or run id)",
            ),
            ("gpu1/nope", "(remote \"gpu1\" has no run with that run id)"),
            ("gpu9/only1", "(there is no remote named \"gpu9\")"),
        ] {
            let e = resolve(&store, text).unwrap_err();
            assert!(matches!(e, RunRefError::NotFound { .. }), "{text}: {e}");
            let message = e.to_string();
            assert!(message.contains(says), "{message}");
            assert!(message.contains("runicorn-hub ls"), "{message}");
        }
    }

    #[test]
    fn a_run_id_lookup_reads_the_index() {
        let (_tmp, store, _keys) = two_remotes();
        let plan: Vec<String> = store
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT r.id, m.name, r.run_id FROM runs r
                 JOIN remotes m ON m.id = r.remote
                 WHERE r.run_id = ?1 AND (?2 IS NULL OR m.name = ?2) ORDER BY m.name, r.id",
            )
            .unwrap()
            .query_map(rusqlite::params!["x", Option::<String>::None], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("COVERING INDEX")),
            "{plan:?}"
        );
    }
}
