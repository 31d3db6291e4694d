//! The store's modules import each other without cycles: plain helpers (`error`, `ids`, `sql`,
//! `file_cache`) and derived tables below the schema, the schema below the `Store` facade, the
//! modules that add `Store` methods above it. Read from the sources (`crate::name` outside test
//! modules), so a new import that closes a ring fails here and names the ring.

// The helpers below are test code too (clippy only counts `#[test]` functions as tests).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules its non-test code names as `crate::module`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            modules.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .filter(|(name, _)| *name != "lib" && *name != "testkit")
        .map(|(name, text)| {
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let uses = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .flat_map(|l| l.split("crate::").skip(1))
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|m| names.contains(m) && m != name)
                .collect();
            (name.clone(), uses)
        })
        .collect()
}

/// A cycle through `node`, if its imports lead back to a module on `path`.
fn cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|m| m == node) {
        let mut ring = path[at..].to_vec();
        ring.push(node.to_owned());
        return Some(ring);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_owned());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(ring) = cycle(graph, next, path, done) {
            return Some(ring);
        }
    }
    path.pop();
    done.insert(node.to_owned());
    None
}

#[test]
fn the_store_modules_import_each_other_without_cycles() {
    let graph = imports();
    assert!(graph.len() > 10, "found only {:?}", graph.keys());
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let ring = cycle(&graph, module, &mut Vec::new(), &mut done);
        assert!(
            ring.is_none(),
            "import cycle: {}",
            ring.unwrap().join(" -> ")
        );
    }
}

#[test]
fn the_plain_modules_depend_on_nothing_with_behaviour() {
    let graph = imports();
    for (module, allowed) in [
        ("error", &[][..]),
        ("ids", &[]),
        ("sql", &[]),
        ("file_cache", &["error"]),
        ("run_values", &[]),
        ("tiles", &["sql"]),
        ("run_query", &["run_values"]),
        ("schema", &["error", "run_values", "tiles"]),
    ] {
        let uses = &graph[module];
        assert!(
            uses.iter().all(|u| allowed.contains(&u.as_str())),
            "{module} imports {uses:?}; it may only import {allowed:?}"
        );
    }
}
