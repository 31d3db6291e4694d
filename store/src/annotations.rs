//! The hub's own edits of a run: an alias, tags and notes that show instead of the run's own,
//! and the hub's recycle bin. They live in columns the sync never writes (`user_alias`,
//! `user_tags`, `notes`, `trashed_at`), so they survive every later sync of the run; nothing on
//! the run's server is touched.

use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::runs::RunRow;
use crate::store::Store;

/// Hub annotations. `None` leaves a field as is; `Some(None)` clears it (the run's own shows
/// again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunAnnotation {
    pub alias: Option<Option<String>>,
    pub tags: Option<Option<Vec<String>>>,
    pub notes: Option<Option<String>>,
}

impl Store {
    /// Applies `edit` to a run's annotations; the run as it now lists, `None` when there is no
    /// such run.
    pub fn annotate_run(
        &mut self,
        run: RunKey,
        edit: &RunAnnotation,
    ) -> Result<Option<RunRow>, StoreError> {
        let mut sets: Vec<&str> = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(alias) = &edit.alias {
            sets.push("user_alias = ?");
            args.push(alias.clone().into());
        }
        if let Some(tags) = &edit.tags {
            sets.push("user_tags = ?");
            args.push(
                tags.as_ref()
                    .map(|t| serde_json::Value::from(t.clone()).to_string())
                    .into(),
            );
        }
        if let Some(notes) = &edit.notes {
            sets.push("notes = ?");
            args.push(notes.clone().into());
        }
        self.update_run(run, &sets, args)
    }

    /// Moves a run to the hub's recycle bin at time `at` (a run already there keeps its time).
    pub fn trash_run(&mut self, run: RunKey, at: f64) -> Result<Option<RunRow>, StoreError> {
        self.update_run(
            run,
            &["trashed_at = coalesce(trashed_at, ?)"],
            vec![at.into()],
        )
    }

    /// Takes a run out of the hub's recycle bin.
    pub fn restore_run(&mut self, run: RunKey) -> Result<Option<RunRow>, StoreError> {
        self.update_run(run, &["trashed_at = NULL"], Vec::new())
    }

    /// `UPDATE runs SET <sets>` for one run, then the run as it lists.
    fn update_run(
        &mut self,
        run: RunKey,
        sets: &[&str],
        mut args: Vec<SqlValue>,
    ) -> Result<Option<RunRow>, StoreError> {
        if !sets.is_empty() {
            args.push(run.0.into());
            let n = self
                .conn
                .execute(
                    &format!("UPDATE runs SET {} WHERE id = ?", sets.join(", ")),
                    params_from_iter(args),
                )
                .at(&self.db_path)?;
            if n == 0 {
                return Ok(None);
            }
        }
        self.run_by_key(run)
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::*;

    #[test]
    fn annotations_show_instead_of_the_runs_own_and_survive_a_resync() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut change = run_change("runs/cv/1", 1, 0);
        change.alias = Some("own".into());
        store
            .apply_change_batch(r, &change_batch(true, vec![change.clone()], "e", 1, false))
            .unwrap();
        let key = store.run(r, "runs/cv/1").unwrap().unwrap().key;
        let row = store
            .annotate_run(
                key,
                &RunAnnotation {
                    alias: Some(Some("mine".into())),
                    tags: Some(Some(vec!["best".into(), "Keep".into()])),
                    notes: Some(Some("lr too high".into())),
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(row.alias.as_deref(), Some("mine"));
        assert_eq!(row.remote_alias.as_deref(), Some("own"));
        assert_eq!(row.tags, ["best", "Keep"]);
        assert_eq!(row.remote_tags, ["t"]);
        assert_eq!(row.notes.as_deref(), Some("lr too high"));
        store.trash_run(key, 5.0).unwrap().unwrap();

        // The run changes on its server and is synced again: the hub's edits stay.
        change.seq = 2;
        change.alias = Some("own2".into());
        change.summary = Some(serde_json::json!({"acc": 0.99}));
        store
            .apply_change_batch(r, &change_batch(false, vec![change], "e", 2, false))
            .unwrap();
        let row = store.run_by_key(key).unwrap().unwrap();
        assert_eq!(row.alias.as_deref(), Some("mine"));
        assert_eq!(row.remote_alias.as_deref(), Some("own2"));
        assert_eq!(row.tags, ["best", "Keep"]);
        assert_eq!(row.notes.as_deref(), Some("lr too high"));
        assert_eq!(row.trashed_at, Some(5.0));

        // Listings see the effective values.
        let find = |f: RunFilter| {
            store
                .list_runs(&RunFilter {
                    trash: TrashView::Include,
                    ..f
                })
                .unwrap()
                .len()
        };
        for text in ["MINE", "too high", "keep", "gpu"] {
            let f = RunFilter {
                text: Some(text.into()),
                ..RunFilter::default()
            };
            assert_eq!(find(f), 1, "{text}");
        }
        let f = RunFilter {
            tag: Some("best".into()),
            ..RunFilter::default()
        };
        assert_eq!(find(f), 1);
        let f = RunFilter {
            tag: Some("t".into()),
            ..RunFilter::default()
        };
        assert_eq!(find(f), 0, "the run's own tags are hidden by the hub's");

        // Partial edits leave other fields; Some(None) clears.
        let row = store
            .annotate_run(
                key,
                &RunAnnotation {
                    alias: Some(None),
                    ..RunAnnotation::default()
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(row.alias.as_deref(), Some("own2"));
        assert_eq!(row.tags, ["best", "Keep"]);
        let row = store
            .annotate_run(
                key,
                &RunAnnotation {
                    tags: Some(None),
                    notes: Some(None),
                    ..RunAnnotation::default()
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!((row.tags, row.notes), (vec!["t".to_owned()], None));
        assert!(store
            .annotate_run(RunKey(999), &RunAnnotation::default())
            .unwrap()
            .is_none());
        assert!(store
            .annotate_run(
                RunKey(999),
                &RunAnnotation {
                    notes: Some(None),
                    ..RunAnnotation::default()
                }
            )
            .unwrap()
            .is_none());
    }

    #[test]
    fn trash_hides_runs_and_restore_brings_them_back() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = vec![run_change("runs/a/1", 1, 0), run_change("runs/a/2", 2, 0)];
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 2, false))
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let count = |store: &Store, trash| {
            store
                .count_runs(&RunFilter {
                    trash,
                    ..RunFilter::default()
                })
                .unwrap()
        };
        assert_eq!(count(&store, TrashView::Hide), 2);
        let row = store.trash_run(key, 100.0).unwrap().unwrap();
        assert_eq!(row.trashed_at, Some(100.0));
        // Trashing again keeps the first time.
        let row = store.trash_run(key, 200.0).unwrap().unwrap();
        assert_eq!(row.trashed_at, Some(100.0));
        assert_eq!(count(&store, TrashView::Hide), 1);
        assert_eq!(count(&store, TrashView::Only), 1);
        assert_eq!(count(&store, TrashView::Include), 2);
        let only = store
            .list_runs(&RunFilter {
                trash: TrashView::Only,
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(only[0].key, key);
        let row = store.restore_run(key).unwrap().unwrap();
        assert_eq!(row.trashed_at, None);
        assert_eq!(count(&store, TrashView::Hide), 2);
        assert!(store.trash_run(RunKey(999), 1.0).unwrap().is_none());
        assert!(store.restore_run(RunKey(999)).unwrap().is_none());
    }
}
