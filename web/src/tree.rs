//! The path tree of `GET /api/paths`, built from the store's run count per path: one node per
//! path segment, each counting its own runs and its children's.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;

/// One node of the path tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PathNode {
    pub name: String,
    pub path: String,
    pub count: u64,
    pub children: Vec<PathNode>,
}

/// Builds the tree from `(path, runs)` pairs; the root is the empty path and counts every run.
/// Children are in natural order (`exp2` before `exp10`). Each node finds its children through a
/// map, so a parent with 100,000 child paths costs no more than 100,000 lookups.
pub fn build_tree(counts: &[(String, u64)]) -> PathNode {
    let mut root = Builder::default();
    for (path, n) in counts {
        root.count += n;
        let mut node = &mut root;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = node.children.entry(segment.to_owned()).or_default();
            node.count += n;
        }
    }
    root.finish("", String::new())
}

/// A node while the tree is being built.
#[derive(Default)]
struct Builder {
    count: u64,
    children: HashMap<String, Builder>,
}

impl Builder {
    fn finish(self, name: &str, path: String) -> PathNode {
        let mut children: Vec<PathNode> = self
            .children
            .into_iter()
            .map(|(child, b)| {
                let child_path = if path.is_empty() {
                    child.clone()
                } else {
                    format!("{path}/{child}")
                };
                b.finish(&child, child_path)
            })
            .collect();
        children.sort_by(|a, b| natural_order(&a.name, &b.name));
        PathNode {
            name: name.to_owned(),
            path,
            count: self.count,
            children,
        }
    }
}

/// Compares names with their runs of digits as numbers: `exp2` < `exp10`, `v1` < `v1a`.
fn natural_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let by_value = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                // Equal numbers: fewer leading zeros first, so the order stays total.
                match by_value.then_with(|| da.len().cmp(&db.len())) {
                    Ordering::Equal => (a, b) = (ra, rb),
                    other => return other,
                }
            }
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => (a, b) = (&a[1..], &b[1..]),
                other => return other,
            },
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_include_children() {
        let tree = build_tree(&[
            ("cv/resnet50".into(), 3),
            ("cv".into(), 1),
            ("nlp/bert/base".into(), 2),
            ("".into(), 4),
        ]);
        assert_eq!(tree.count, 10);
        assert_eq!(tree.children.len(), 2);
        let cv = &tree.children[0];
        assert_eq!(
            (cv.name.as_str(), cv.path.as_str(), cv.count),
            ("cv", "cv", 4)
        );
        assert_eq!(cv.children[0].path, "cv/resnet50");
        assert_eq!(cv.children[0].count, 3);
        let nlp = &tree.children[1];
        assert_eq!(nlp.count, 2);
        assert_eq!(nlp.children[0].children[0].path, "nlp/bert/base");
        assert!(nlp.children[0].children[0].children.is_empty());
    }

    #[test]
    fn an_empty_store_is_an_empty_root() {
        let tree = build_tree(&[]);
        assert_eq!(tree.count, 0);
        assert!(tree.children.is_empty());
    }

    #[test]
    fn children_are_in_natural_order() {
        let tree = build_tree(&[
            ("vision/exp10".into(), 1),
            ("vision/exp2".into(), 1),
            ("vision/exp1".into(), 1),
            ("vision/exp02".into(), 1),
            ("vision/expb".into(), 1),
        ]);
        let names: Vec<&str> = tree.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["exp1", "exp2", "exp02", "exp10", "expb"]);
    }

    #[test]
    fn many_siblings_build_quickly() {
        let counts: Vec<(String, u64)> = (0..100_000).map(|i| (format!("p/run{i}"), 1)).collect();
        // Quadratic sibling lookups took minutes here (the test would hang); a map takes
        // milliseconds.
        let tree = build_tree(&counts);
        assert_eq!(tree.children[0].children.len(), 100_000);
        assert_eq!(tree.children[0].children[9].name, "run9");
        assert_eq!(tree.children[0].children[10].name, "run10");
    }
}
