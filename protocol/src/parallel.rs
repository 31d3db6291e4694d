//! A small helper for doing the same work over many items on several threads.
//!
//! Listing thousands of runs is bound by file-system latency as much as by the CPU: with the
//! page cache cold, each directory read or `stat` waits on the disk, so more workers than cores
//! keep more requests in flight.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Workers for work that waits on the file system as often as it computes.
pub fn io_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(8)
}

/// Maps `f` over `items` on up to `workers` threads and returns the results in the items' order.
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| f(i, item))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(i, item)));
                    }
                    mine
                })
            })
            .collect();
        // A worker panics only on a bug in `f`; re-raise it here rather than lose its share.
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_any_worker_count() {
        let items: Vec<u32> = (0..1000).collect();
        for workers in [0, 1, 3, 64] {
            let out = map_in_order(&items, workers, |i, x| (i as u32, x * 2));
            assert!(out
                .iter()
                .enumerate()
                .all(|(i, (j, y))| *j == i as u32 && *y == 2 * i as u32));
        }
        assert!(map_in_order(&[] as &[u32], 4, |_, x| *x).is_empty());
    }
}
