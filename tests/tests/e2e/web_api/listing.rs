//! `GET /api/runs`: the fields of a listed run, and tables of filters, sorts, pages and mistakes
//! over the sample world (five runs, see `world.rs`), each case named when it fails.

use runicorn_tests::check_cases;
use serde_json::Value;

use super::world::{error_message, ids_of, Served, World};

/// Every run of the sample world, in run-id order.
const ALL: &[&str] = &["runa", "runb", "runc", "rund", "rune"];

/// `GET /api/runs?{query}` as a 200 answer, or what was wrong.
fn listing(served: &Served, query: &str) -> Result<Value, String> {
    let r = served.get(&format!("/api/runs?{query}"));
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    Ok(r.json())
}

#[test]
fn a_listed_run_carries_every_field() {
    let world = World::new();
    let served = world.serve();
    let all = served.json("/api/runs");
    assert_eq!(all["total"], 5, "{all}");
    let a = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "runa")
        .unwrap();
    for field in [
        "key",
        "run_id",
        "remote",
        "host",
        "dir",
        "path",
        "alias",
        "tags",
        "notes",
        "status",
        "reason",
        "created_at",
        "ended_at",
        "last_step",
        "points",
        "keys",
        "summary",
        "config",
        "log_bytes",
        "deleted",
        "removed",
        "trashed_at",
    ] {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert_eq!(a["remote"], "here");
    assert_eq!(a["path"], "cv/resnet50");
    assert_eq!(a["alias"], "own-runa");
    assert_eq!(a["last_step"], 29);
    assert_eq!(a["config"]["optim"]["name"], "sgd");
    assert!(
        all.to_string().find("transport").is_none(),
        "no transport settings in listings"
    );
}

/// A filter and the runs it selects (compared in run-id order).
#[derive(Debug)]
struct Filter {
    query: &'static str,
    runs: &'static [&'static str],
    #[allow(dead_code, reason = "read through Debug when the case fails")]
    why: &'static str,
}

const FILTERS: &[Filter] = &[
    Filter {
        query: "",
        runs: ALL,
        why: "no filter: every run",
    },
    Filter {
        query: "path=cv",
        runs: &["runa", "runb", "runc"],
        why: "a path selects its subtree",
    },
    Filter {
        query: "path=c",
        runs: &[],
        why: "a path matches whole segments only",
    },
    Filter {
        query: "path=cv/resnet50",
        runs: &["runa", "runb"],
        why: "a deeper path",
    },
    Filter {
        query: "status=failed",
        runs: &["runc"],
        why: "one status",
    },
    Filter {
        query: "status=failed,finished",
        runs: ALL,
        why: "a list of statuses",
    },
    Filter {
        query: "q=RUND",
        runs: &["rund"],
        why: "the search ignores case",
    },
    Filter {
        query: "remote=here",
        runs: ALL,
        why: "the remote's name",
    },
    Filter {
        query: "remote=elsewhere",
        runs: &[],
        why: "an unknown remote selects nothing",
    },
];

#[test]
fn filters_select_the_runs() {
    let world = World::new();
    let served = world.serve();
    check_cases(FILTERS, |case| {
        let page = listing(&served, case.query)?;
        let mut ids = ids_of(&page);
        ids.sort();
        if ids != case.runs || page["total"] != case.runs.len() {
            return Err(format!("got {ids:?}, total {}", page["total"]));
        }
        Ok(())
    });
}

/// What a sort must give.
#[derive(Debug)]
enum Order {
    /// These runs in this order.
    Exactly(&'static [&'static str]),
    /// These runs first, the others after.
    StartsWith(&'static [&'static str]),
    /// Every run, in an order this table does not pin down.
    EveryRun,
}

/// A sort and the order of the runs it gives.
#[derive(Debug)]
struct Sort {
    query: &'static str,
    order: Order,
    #[allow(dead_code, reason = "read through Debug when the case fails")]
    why: &'static str,
}

const SORTS: &[Sort] = &[
    Sort {
        query: "sort=summary.loss&order=asc",
        order: Order::Exactly(&["rune", "runa", "rund", "runb", "runc"]),
        why: "a summary value; runc has none",
    },
    Sort {
        query: "sort=summary.loss&order=desc",
        order: Order::Exactly(&["runb", "rund", "runa", "rune", "runc"]),
        why: "runs without the key come last in either order",
    },
    Sort {
        query: "sort=config.lr&order=asc",
        order: Order::Exactly(&["rune", "rund", "runb", "runa", "runc"]),
        why: "a config value",
    },
    Sort {
        query: "sort=config.optim.name&order=asc",
        order: Order::StartsWith(&["runb", "runa"]),
        why: "a dotted config key",
    },
    Sort {
        query: "sort=run_id&order=asc",
        order: Order::Exactly(ALL),
        why: "the run's own id",
    },
    Sort {
        query: "sort=points&order=desc",
        order: Order::StartsWith(&["rune"]),
        why: "the long run has the most points",
    },
    Sort {
        query: "sort=path&order=asc",
        order: Order::StartsWith(&["runc"]),
        why: "cv before cv/resnet50 and nlp",
    },
    Sort {
        query: "sort=created_at",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=ended_at",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=path",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=alias",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=status",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=remote",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=host",
        order: Order::EveryRun,
        why: "a plain column",
    },
    Sort {
        query: "sort=last_step",
        order: Order::EveryRun,
        why: "a plain column",
    },
];

#[test]
fn sorts_order_the_runs() {
    let world = World::new();
    let served = world.serve();
    check_cases(SORTS, |case| {
        let page = listing(&served, case.query)?;
        let ids = ids_of(&page);
        if page["total"] != ALL.len() || ids.len() != ALL.len() {
            return Err(format!("not every run: {ids:?}, total {}", page["total"]));
        }
        let right = match case.order {
            Order::Exactly(runs) => ids == runs,
            Order::StartsWith(runs) => ids[..runs.len()] == *runs,
            Order::EveryRun => true,
        };
        if !right {
            return Err(format!("got {ids:?}"));
        }
        Ok(())
    });
}

/// A page of the listing sorted by run id.
#[derive(Debug)]
struct Page {
    query: &'static str,
    runs: &'static [&'static str],
}

const PAGES: &[Page] = &[
    Page {
        query: "sort=run_id&order=asc&limit=2",
        runs: &["runa", "runb"],
    },
    Page {
        query: "sort=run_id&order=asc&limit=2&offset=2",
        runs: &["runc", "rund"],
    },
    Page {
        query: "sort=run_id&order=asc&limit=2&offset=4",
        runs: &["rune"],
    },
];

#[test]
fn pages_keep_the_total_and_walk_the_same_order() {
    let world = World::new();
    let served = world.serve();
    check_cases(PAGES, |case| {
        let page = listing(&served, case.query)?;
        let ids = ids_of(&page);
        if ids != case.runs || page["total"] != ALL.len() {
            return Err(format!("got {ids:?}, total {}", page["total"]));
        }
        Ok(())
    });
}

/// A listing parameter out of its vocabulary or bounds, and the word the error must name.
#[derive(Debug)]
struct Mistake {
    query: &'static str,
    names: &'static str,
}

const MISTAKES: &[Mistake] = &[
    Mistake {
        query: "sort=colour",
        names: "colour",
    },
    Mistake {
        query: "limit=100000",
        names: "limit",
    },
];

#[test]
fn mistakes_are_400s_naming_the_parameter() {
    let world = World::new();
    let served = world.serve();
    check_cases(MISTAKES, |case| {
        let r = served.get(&format!("/api/runs?{}", case.query));
        if r.status != 400
            || r.json()["error"]["code"] != "bad_request"
            || !error_message(&r).contains(case.names)
        {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        Ok(())
    });
}
