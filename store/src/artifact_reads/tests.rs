//! Unit tests of the artifact reads, over rows inserted into schema 6's tables with plain SQL.

use super::*;
use crate::testkit::{add_remote, change_batch, fresh_store, run_change};

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn artifact(store: &Store, remote: RemoteId, kind: &str, name: &str) -> ArtifactId {
    store
        .conn
        .execute(
            "INSERT INTO artifacts(remote, dir, seq, type, name) VALUES (?1, ?2, 1, ?3, ?4)",
            rusqlite::params![remote.0, format!("artifacts/{kind}/{name}"), kind, name],
        )
        .unwrap();
    ArtifactId(store.conn.last_insert_rowid())
}

/// A version with its files `(path, size, sha char)`, produced by `(run_id, dir)`.
fn version(
    store: &Store,
    a: ArtifactId,
    n: u32,
    produced: Option<(&str, &str)>,
    files: &[(&str, u64, char)],
) {
    let size: u64 = files.iter().map(|f| f.1).sum();
    store
        .conn
        .execute(
            "INSERT INTO artifact_versions(artifact, version, created_at, size, produced_run_id,
                    produced_dir, produced_host, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'gpu', '{\"epoch\": 1}')",
            rusqlite::params![
                a.0,
                n,
                1000.0 + f64::from(n),
                size as i64,
                produced.map(|p| p.0),
                produced.map(|p| p.1)
            ],
        )
        .unwrap();
    for (path, size, c) in files {
        store
            .conn
            .execute(
                "INSERT INTO artifact_files VALUES (?1, ?2, ?3, ?4, ?5, 'whole')",
                rusqlite::params![a.0, n, path, *size as i64, sha(*c)],
            )
            .unwrap();
    }
}

fn alias(store: &Store, a: ArtifactId, alias: &str, n: u32) {
    store
        .conn
        .execute(
            "INSERT INTO artifact_aliases VALUES (?1, ?2, ?3)",
            rusqlite::params![a.0, alias, n],
        )
        .unwrap();
}

fn usage(store: &Store, a: ArtifactId, n: u32, run_id: &str, dir: &str) {
    store
        .conn
        .execute(
            "INSERT INTO artifact_usage VALUES (?1, ?2, ?3, ?4, 'gpu')",
            rusqlite::params![a.0, n, run_id, dir],
        )
        .unwrap();
}

struct World {
    _tmp: tempfile::TempDir,
    store: Store,
    model: ArtifactId,
    data: ArtifactId,
    producer: RunKey,
    consumer: RunKey,
}

/// Remote `a` holds runs `runs/p/r1` (produced m:v1 and m:v2) and `runs/p/r2` (used m:v1, and
/// produced data/d:v1 on remote `b`, which names it by run id only); m:v3 was produced by a run
/// the hub does not have.
fn world() -> World {
    let (tmp, mut store) = fresh_store();
    let a = add_remote(&mut store, "a");
    let b = add_remote(&mut store, "b");
    store
        .apply_change_batch(
            a,
            &change_batch(
                true,
                vec![run_change("runs/p/r1", 1, 0), run_change("runs/p/r2", 2, 0)],
                "e",
                2,
                false,
            ),
        )
        .unwrap();
    let producer = store.run(a, "runs/p/r1").unwrap().unwrap().key;
    let consumer = store.run(a, "runs/p/r2").unwrap().unwrap().key;
    let model = artifact(&store, a, "model", "m");
    version(
        &store,
        model,
        1,
        Some(("r1", "runs/p/r1")),
        &[("a.bin", 100, 'a')],
    );
    version(
        &store,
        model,
        2,
        Some(("r1", "runs/p/r1")),
        &[("a.bin", 100, 'a'), ("b.bin", 50, 'b')],
    );
    version(
        &store,
        model,
        3,
        Some(("r9", "runs/p/r9")),
        &[("a.bin", 100, 'c')],
    );
    alias(&store, model, "latest", 3);
    alias(&store, model, "best", 2);
    usage(&store, model, 1, "r2", "runs/p/r2");
    let data = artifact(&store, b, "dataset", "d");
    version(
        &store,
        data,
        1,
        Some(("r2", "elsewhere/r2")),
        &[("x.csv", 10, 'd')],
    );
    alias(&store, data, "latest", 1);
    World {
        _tmp: tmp,
        store,
        model,
        data,
        producer,
        consumer,
    }
}

#[test]
fn listing_has_versions_aliases_sizes_and_bytes_saved() {
    let w = world();
    let all = w.store.list_artifacts(&ArtifactFilter::default()).unwrap();
    let names: Vec<(&str, &str)> = all
        .artifacts
        .iter()
        .map(|a| (a.kind.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(names, [("dataset", "d"), ("model", "m")]);
    let m = &all.artifacts[1];
    assert_eq!(m.remote, "a");
    assert_eq!(m.dir, "artifacts/model/m");
    let versions: Vec<u32> = m.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(m.versions[0].aliases, ["latest"]);
    assert_eq!(m.versions[1].aliases, ["best"]);
    assert!(m.versions[2].aliases.is_empty());
    assert_eq!(m.versions[1].file_count, 2);
    assert_eq!(m.versions[1].size, 150);
    assert_eq!(
        m.versions[0].metadata,
        Some(serde_json::json!({"epoch": 1}))
    );
    // 100 + 150 + 100 in all; contents a (100), b (50), c (100) once each.
    assert_eq!((m.total_bytes, m.stored_bytes), (350, 250));
    assert_eq!((all.total_bytes, all.stored_bytes), (360, 260));
    // Producers resolve to the hub's runs where it has them.
    assert_eq!(
        m.versions[2].produced_by.as_ref().unwrap().key,
        Some(w.producer)
    );
    assert_eq!(m.versions[0].produced_by.as_ref().unwrap().key, None);
    assert_eq!(m.versions[2].used_by.len(), 1);
    assert_eq!(m.versions[2].used_by[0].key, Some(w.consumer));
    // Remote b has no run `elsewhere/r2`: the one run with run id r2 is it.
    let d = &all.artifacts[0];
    assert_eq!(
        d.versions[0].produced_by.as_ref().unwrap().key,
        Some(w.consumer)
    );
}

#[test]
fn server_bytes_are_the_agents_chunk_level_measure_summed_per_artifact() {
    let w = world();
    let all = w.store.list_artifacts(&ArtifactFilter::default()).unwrap();
    assert!(all.artifacts.iter().all(|a| a.server_bytes.is_none()));
    assert_eq!((all.server_bytes, all.server_measured_bytes), (None, 0));
    w.store
        .conn
        .execute(
            "UPDATE artifacts SET stored_bytes = 120 WHERE name = 'm'",
            [],
        )
        .unwrap();
    let all = w.store.list_artifacts(&ArtifactFilter::default()).unwrap();
    let m = all.artifacts.iter().find(|a| a.name == "m").unwrap();
    assert_eq!(m.server_bytes, Some(120));
    assert_eq!(all.server_bytes, Some(120));
    assert_eq!(all.server_measured_bytes, m.total_bytes);
}

#[test]
fn listing_filters_by_type_remote_and_removed() {
    let w = world();
    let only = |f: ArtifactFilter| -> Vec<String> {
        w.store
            .list_artifacts(&f)
            .unwrap()
            .artifacts
            .into_iter()
            .map(|a| a.name)
            .collect()
    };
    let typed = ArtifactFilter {
        kind: Some("model".into()),
        ..Default::default()
    };
    assert_eq!(only(typed), ["m"]);
    let on_b = ArtifactFilter {
        remote: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(only(on_b), ["d"]);
    w.store
        .conn
        .execute("UPDATE artifacts SET removed = 1 WHERE id = ?1", [w.data.0])
        .unwrap();
    assert_eq!(only(ArtifactFilter::default()), ["m"]);
    let with_removed = ArtifactFilter {
        include_removed: true,
        ..Default::default()
    };
    assert_eq!(only(with_removed), ["d", "m"]);
    // Found by name even when removed, and marked so.
    let d = w
        .store
        .artifact_by_name("b", "dataset", "d")
        .unwrap()
        .unwrap();
    assert!(d.removed);
    assert!(w
        .store
        .artifact_by_name("a", "dataset", "d")
        .unwrap()
        .is_none());
}

#[test]
fn version_files_by_path() {
    let w = world();
    let files = w.store.artifact_version_files(w.model, 2, 100).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a.bin", "b.bin"]);
    assert_eq!(files[1].sha256, sha('b'));
    assert_eq!(files[1].stored, "whole");
    assert_eq!(
        w.store.artifact_version_files(w.model, 2, 1).unwrap().len(),
        1
    );
    assert!(w
        .store
        .artifact_version_files(w.model, 9, 100)
        .unwrap()
        .is_empty());
}

#[test]
fn a_run_lists_what_it_produced_and_used() {
    let w = world();
    let p = w.store.run_artifacts(w.producer).unwrap();
    let produced: Vec<(String, u32)> = p
        .produced
        .iter()
        .map(|v| (v.name.clone(), v.version))
        .collect();
    assert_eq!(produced, [("m".to_owned(), 1), ("m".to_owned(), 2)]);
    assert!(p.used.is_empty());
    assert_eq!(p.produced[1].aliases, ["best"]);
    let c = w.store.run_artifacts(w.consumer).unwrap();
    let used: Vec<(String, u32)> = c.used.iter().map(|v| (v.name.clone(), v.version)).collect();
    assert_eq!(used, [("m".to_owned(), 1)]);
    let produced: Vec<(&str, &str)> = c
        .produced
        .iter()
        .map(|v| (v.remote.as_str(), v.kind.as_str()))
        .collect();
    assert_eq!(produced, [("b", "dataset")]);
    assert_eq!(
        w.store.run_artifacts(RunKey(999)).unwrap(),
        RunArtifactRows::default()
    );
}

#[test]
fn a_run_id_held_by_two_runs_links_to_neither() {
    let mut w = world();
    let c = add_remote(&mut w.store, "c");
    w.store
        .apply_change_batch(
            c,
            &change_batch(true, vec![run_change("runs/q/r2", 1, 0)], "e", 1, false),
        )
        .unwrap();
    let d = w.store.artifact(w.data).unwrap().unwrap();
    assert_eq!(d.versions[0].produced_by.as_ref().unwrap().key, None);
    assert!(w
        .store
        .run_artifacts(w.consumer)
        .unwrap()
        .produced
        .is_empty());
}

#[test]
fn run_assets_are_read_as_json() {
    let w = world();
    assert_eq!(w.store.run_assets(w.producer).unwrap(), None);
    w.store
        .conn
        .execute(
            "UPDATE runs SET assets = '{\"datasets\": [{\"name\": \"mnist\"}]}' WHERE id = ?1",
            [w.producer.0],
        )
        .unwrap();
    assert_eq!(
        w.store.run_assets(w.producer).unwrap(),
        Some(serde_json::json!({"datasets": [{"name": "mnist"}]}))
    );
}

fn ids(g: &LineageGraph) -> Vec<&str> {
    g.nodes.iter().map(LineageNode::id).collect()
}

#[test]
fn lineage_around_a_run_follows_links_both_ways() {
    let w = world();
    let g = w
        .store
        .lineage(LineageStart::Run(w.producer), LineageBounds::default())
        .unwrap()
        .unwrap();
    let (p, c) = (w.producer.0, w.consumer.0);
    let (m, d) = (w.model.0, w.data.0);
    assert_eq!(g.root, format!("run:{p}"));
    let mut got = ids(&g);
    got.sort();
    let mut want = vec![
        format!("run:{p}"),
        format!("ver:{m}:1"),
        format!("ver:{m}:2"),
        format!("run:{c}"),
        format!("ver:{d}:1"),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(!g.truncated);
    let edge = |from: String, to: String, kind| LineageEdge { from, to, kind };
    for e in [
        edge(
            format!("run:{p}"),
            format!("ver:{m}:1"),
            LineageEdgeKind::Produced,
        ),
        edge(
            format!("run:{p}"),
            format!("ver:{m}:2"),
            LineageEdgeKind::Produced,
        ),
        edge(
            format!("ver:{m}:1"),
            format!("run:{c}"),
            LineageEdgeKind::Used,
        ),
        edge(
            format!("run:{c}"),
            format!("ver:{d}:1"),
            LineageEdgeKind::Produced,
        ),
    ] {
        assert!(g.edges.contains(&e), "{e:?} missing from {:?}", g.edges);
    }
    assert_eq!(g.edges.len(), 4);
}

#[test]
fn lineage_is_bounded_by_depth_and_nodes() {
    let w = world();
    let g = w
        .store
        .lineage(
            LineageStart::Run(w.producer),
            LineageBounds {
                depth: 1,
                max_nodes: 100,
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(g.nodes.len(), 3);
    assert!(g.truncated);
    let g = w
        .store
        .lineage(
            LineageStart::Run(w.producer),
            LineageBounds {
                depth: 9,
                max_nodes: 2,
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(g.nodes.len(), 2);
    assert!(g.truncated);
}

#[test]
fn lineage_around_a_version_shows_a_producer_the_hub_lacks() {
    let w = world();
    let g = w
        .store
        .lineage(
            LineageStart::Version {
                artifact: w.model,
                version: 3,
            },
            LineageBounds::default(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(g.nodes.len(), 2);
    let LineageNode::Run { run, id } = &g.nodes[1] else {
        panic!("{:?}", g.nodes);
    };
    assert_eq!(
        (run.key, run.run_id.as_str(), run.remote.as_str()),
        (None, "r9", "a")
    );
    assert_eq!(
        g.edges,
        [LineageEdge {
            from: id.clone(),
            to: g.root.clone(),
            kind: LineageEdgeKind::Produced
        }]
    );
    assert!(w
        .store
        .lineage(
            LineageStart::Version {
                artifact: w.model,
                version: 7
            },
            LineageBounds::default()
        )
        .unwrap()
        .is_none());
}
