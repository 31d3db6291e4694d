//! `GET /api/runs?q=EXPR`, the filter language (docs/api.md, "Filter language"), over the
//! sample world (five runs synced for real, see `world.rs`): tables of expressions and the runs
//! they keep, with the other parameters of the listing; malformed expressions answered `400
//! bad_filter` with the offending token's place; `/api/columns` listing the metric keys.

use runicorn_tests::check_cases;
use serde_json::Value;

use super::world::{ids_of, World};

const ALL: &[&str] = &["runa", "runb", "runc", "rund", "rune"];

/// `q` percent-encoded for a query string.
fn encoded(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An expression (with other parameters) and the runs it keeps, in run-id order unless the
/// listing is sorted.
#[derive(Debug)]
struct Case {
    q: &'static str,
    extra: &'static str,
    runs: &'static [&'static str],
    total: usize,
}

const fn case(q: &'static str, runs: &'static [&'static str]) -> Case {
    Case {
        q,
        extra: "",
        runs,
        total: runs.len(),
    }
}

const CASES: &[Case] = &[
    case("config.optim.name = \"sgd\"", &["runa"]),
    case("config.optim.name = adam", &["runb"]),
    case("config.lr > 0.01", &["runa", "runb"]),
    case(
        "config.lr >= 0.01 and summary.loss < 0.25",
        &["runa", "rund"],
    ),
    case("summary.acc > 0.8 or status = failed", &["runa", "runc"]),
    case("not has:config.lr", &["runc"]),
    case("config.lr != 0.1", &["runb", "rund", "rune"]),
    case("not config.lr = 0.1", &["runb", "runc", "rund", "rune"]),
    case("config.lr = null", &["runc"]),
    case(
        "config.batch = 32 and config.batch != 64",
        &["runa", "runb"],
    ),
    case("metric.loss.max > 50", &["rune"]),
    case("metric.loss.min < 0.04", &["runa"]),
    case("metric.loss.last > 1", &["rune"]),
    case("metric.acc.last >= 0.019", &["runa", "runb"]),
    case("has:metric.acc", &["runa", "runb", "runc", "rund"]),
    case("metric.nope.last > 0 or nope = 1", &[]),
    case("here", ALL),
    case("HERE and resnet", &["runa", "runb"]),
    case("here resnet", &[]),
    case("remote = here and path ~ NET", &["runa", "runb"]),
    case(
        "(run_id = runa or run_id = runb) and not alias ~ B",
        &["runa"],
    ),
    case("path < cv/z and status != failed", &["runa", "runb"]),
    case("tag:best", &[]),
    case("summary.`loss` <= 0.05", &["rune"]),
    Case {
        q: "config.lr > 0.005",
        extra: "&sort=summary.loss&order=asc&limit=2",
        runs: &["runa", "rund"],
        total: 3,
    },
    Case {
        q: "has:summary.loss",
        extra: "&path=nlp&status=finished",
        runs: &["rund", "rune"],
        total: 2,
    },
];

#[test]
fn expressions_keep_the_runs_they_describe() {
    let world = World::new();
    let served = world.serve();
    check_cases(CASES, |c| {
        let r = served.get(&format!("/api/runs?q={}{}", encoded(c.q), c.extra));
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        let page = r.json();
        let mut ids = ids_of(&page);
        if !c.extra.contains("sort=") {
            ids.sort();
        }
        if ids != c.runs || page["total"] != c.total {
            return Err(format!("got {ids:?}, total {}", page["total"]));
        }
        Ok(())
    });
    // The path tree counts under the same expression.
    let tree = served.json(&format!("/api/paths?q={}", encoded("config.lr > 0.01")));
    assert!(tree.to_string().contains("resnet50"), "{tree}");
    assert!(!tree.to_string().contains("bert"), "{tree}");
}

/// A malformed expression and where its mistake is.
#[derive(Debug)]
struct Bad {
    q: &'static str,
    position: u64,
    length: u64,
    says: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        q: "config.lr =",
        position: 11,
        length: 0,
        says: "expected a value after \"=\" at position 11",
    },
    Bad {
        q: "summary.acc > 0.5 and",
        position: 21,
        length: 0,
        says: "expected a term after \"and\"",
    },
    Bad {
        q: "(a or b",
        position: 7,
        length: 0,
        says: "to close the \"(\" at position 0",
    },
    Bad {
        q: "status = running)",
        position: 16,
        length: 1,
        says: "unexpected \")\"",
    },
    Bad {
        q: "x ! y",
        position: 2,
        length: 1,
        says: "use != or not",
    },
    Bad {
        q: "tag:",
        position: 4,
        length: 0,
        says: "expected a tag",
    },
    Bad {
        q: "config.lr < null",
        position: 12,
        length: 4,
        says: "null can only follow = or !=",
    },
    Bad {
        q: "alias = \"unclosed",
        position: 8,
        length: 9,
        says: "no closing \"",
    },
    Bad {
        q: "ü = )",
        position: 4,
        length: 1,
        says: "position 4",
    },
    Bad {
        q: "foo:bar",
        position: 0,
        length: 3,
        says: "use tag:NAME or has:KEY",
    },
];

#[test]
fn a_malformed_expression_is_a_400_with_its_position() {
    let world = World::new();
    let served = world.serve();
    check_cases(BAD, |c| {
        let r = served.get(&format!("/api/runs?q={}", encoded(c.q)));
        if r.status != 400 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        let body: Value = r.json();
        let e = &body["error"];
        let message = e["message"].as_str().unwrap_or("");
        if e["code"] != "bad_filter"
            || e["position"] != c.position
            || e["length"] != c.length
            || !message.contains(c.says)
            || !message.starts_with("parameter q: ")
        {
            return Err(format!("answered {body}"));
        }
        Ok(())
    });
    // The path tree refuses it alike.
    let r = served.get(&format!("/api/paths?q={}", encoded("a and")));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "bad_filter");
}

#[test]
fn columns_list_the_metric_keys_for_completion() {
    let world = World::new();
    let served = world.serve();
    let columns = served.json("/api/columns");
    assert_eq!(
        columns["metrics"],
        serde_json::json!(["acc", "loss"]),
        "{columns}"
    );
    assert_eq!(
        columns["summary"],
        serde_json::json!(["acc", "loss"]),
        "{columns}"
    );
}
