//! Starting the dashboard: a port in use is an error naming it and `--port`; an empty store
//! serves empty answers.

use std::net::{IpAddr, Ipv4Addr};

use runicorn_tests::sshd::ClientHome;
use runicorn_web::{Dashboard, DashboardConfig};
use serde_json::json;

use super::world::{Served, World};

#[test]
fn a_port_in_use_is_reported_with_a_way_out() {
    let world = World {
        home: ClientHome::empty(),
        root: tempfile::tempdir().unwrap(),
        hub_dir: tempfile::tempdir().unwrap(),
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(Dashboard::bind(DashboardConfig {
            store_dir: world.hub_dir.path().to_owned(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            files: None,
            bundles: None,
        }))
        .err()
        .expect("the port is taken");
    let message = err.to_string();
    assert!(message.contains(&port.to_string()), "{message}");
    assert!(message.contains("--port"), "{message}");
    // An empty store still serves an empty table.
    let served = Served::start(world.hub_dir.path(), None);
    let page = served.json("/api/runs");
    assert_eq!(page, json!({"runs": [], "total": 0}));
    assert_eq!(served.json("/api/paths")["total"], 0);
    assert_eq!(served.json("/api/remotes"), json!({"remotes": []}));
}
