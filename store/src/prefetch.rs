//! What to bring into the file cache before anyone asks: [`Store::prefetch_candidates`] lists a
//! remote's uncached files that a policy wants (small media, say), newest run first, within a
//! per-run budget that counts what the cache already holds of that run. The policy itself (which
//! files, what sizes) is the hub's.

use rusqlite::params;

use crate::error::{SqliteContext, StoreError};
use crate::ids::{RemoteId, RunKey};
use crate::sql::from_sql_int;
use crate::store::Store;

/// A file worth fetching now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchCandidate {
    pub run: RunKey,
    pub path: String,
    pub size: u64,
}

impl Store {
    /// The uncached files of `remote`'s present runs for which `wanted(path, size)` holds,
    /// newest run first, by path within a run. With `run_budget`, a run's wanted files (cached ones included) stop
    /// being listed once they would pass it: a file that does not fit is left out, a smaller one
    /// after it may still fit.
    pub fn prefetch_candidates(
        &self,
        remote: RemoteId,
        wanted: &dyn Fn(&str, u64) -> bool,
        run_budget: Option<u64>,
    ) -> Result<Vec<PrefetchCandidate>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT f.run, f.path, f.size, f.cached_sha256 IS NOT NULL FROM files f
                 JOIN runs r ON r.id = f.run
                 WHERE r.remote = ?1 AND r.removed = 0
                 ORDER BY f.run DESC, f.path",
            )
            .at(p)?;
        let mut rows = stmt.query(params![remote.0]).at(p)?;
        let mut found = Vec::new();
        let mut current: Option<i64> = None;
        let mut spent = 0u64;
        while let Some(row) = rows.next().at(p)? {
            let run: i64 = row.get(0).at(p)?;
            let path: String = row.get(1).at(p)?;
            let size = from_sql_int(row.get(2).at(p)?);
            let cached: bool = row.get(3).at(p)?;
            if current != Some(run) {
                current = Some(run);
                spent = 0;
            }
            if !wanted(&path, size) {
                continue;
            }
            let fits = run_budget.is_none_or(|b| spent.saturating_add(size) <= b);
            if !fits {
                continue;
            }
            spent += size;
            if !cached {
                found.push(PrefetchCandidate {
                    run: RunKey(run),
                    path,
                    size,
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{add_remote, change_batch, file_entry, fresh_store, run_change};

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn wanted_uncached_files_within_the_run_budget_newest_run_first() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let other = add_remote(&mut store, "other");
        let mut old = run_change("runs/p/old", 1, 0);
        old.files = vec![file_entry("a.png", 10, Some(SHA))];
        let mut new = run_change("runs/p/new", 2, 0);
        new.files = vec![
            file_entry("a.png", 40, Some(SHA)),
            file_entry("b.png", 50, Some(SHA)),
            file_entry("c.png", 30, Some(SHA)),
            file_entry("d.png", 5, None),
            file_entry("model.pt", 10, Some(SHA)),
        ];
        store
            .apply_change_batch(r, &change_batch(true, vec![old, new], "e", 2, false))
            .unwrap();
        let mut elsewhere = run_change("runs/p/x", 1, 0);
        elsewhere.files = vec![file_entry("z.png", 1, Some(SHA))];
        store
            .apply_change_batch(other, &change_batch(true, vec![elsewhere], "e", 1, false))
            .unwrap();
        let new_key = store.run(r, "runs/p/new").unwrap().unwrap().key;
        assert!(store.record_cached_file(new_key, "a.png", SHA).unwrap());
        let images = |path: &str, _size: u64| path.ends_with(".png");
        let listed: Vec<(String, u64)> = store
            .prefetch_candidates(r, &images, Some(75))
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.size))
            .collect();
        // a.png (40, cached) counts; b.png (50) does not fit; c.png (30) and d.png (5) do.
        assert_eq!(
            listed,
            [
                ("c.png".to_owned(), 30),
                ("d.png".to_owned(), 5),
                ("a.png".to_owned(), 10)
            ]
        );
        let unlimited = store.prefetch_candidates(r, &|_, _| true, None).unwrap();
        assert_eq!(unlimited.len(), 5);
        assert_eq!(unlimited[0].run, new_key);
    }
}
