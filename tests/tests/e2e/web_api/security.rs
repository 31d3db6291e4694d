//! What keeps other sites out: foreign `Host` headers refused (DNS rebinding), no CORS, the
//! security headers on every answer, the page's token required for writes with our own origin,
//! and JSON errors for every API mistake.

use runicorn_tests::http::Request;
use serde_json::json;

use super::world::{error_message, run_by_run_id, World};

#[test]
fn foreign_hosts_and_cross_site_writes_are_refused() {
    let world = World::new();
    let served = world.serve();
    let port = served.addr.port();
    assert_eq!(served.url, format!("http://127.0.0.1:{port}/"));
    let id = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();

    // DNS rebinding: a foreign Host is refused, loopback names pass.
    let r = Request::get("/api/runs")
        .header("Host", &format!("evil.example:{port}"))
        .send(served.addr);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden");
    assert!(error_message(&r).contains("evil.example"), "{}", r.text());
    let r = Request::get("/")
        .header("Host", "evil.example")
        .send(served.addr);
    assert_eq!(r.status, 403);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = Request::get("/api/runs")
            .header("Host", &host)
            .send(served.addr);
        assert_eq!(r.status, 200, "{host}");
    }

    // No CORS, ever; the security headers, always.
    let r = Request::get("/api/runs")
        .header("Origin", "http://evil.example")
        .send(served.addr);
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    for resp in [&r, &served.get("/"), &served.get("/api/nothing")] {
        assert!(resp.header("access-control-allow-origin").is_none());
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(resp
            .header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
    }
    let r = Request::new("OPTIONS", "/api/runs")
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "PATCH")
        .send(served.addr);
    assert!(r.header("access-control-allow-origin").is_none());

    // The page carries the token.
    let index = served.get("/");
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let token = served.token();
    assert_eq!(token.len(), 64);
    assert!(index.text().contains(&token));
    // Any page of the app is the app; unknown API routes are JSON 404s.
    let spa = served.get(&format!("/runs/{id}"));
    assert_eq!(spa.status, 200);
    assert!(spa.text().contains(&token));
    let r = served.get("/api/nothing");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("/api/nothing"), "{}", r.text());

    // Writes: no token, a wrong token, a foreign origin are refused; nothing changes.
    let target = format!("/api/runs/{id}");
    let body = json!({"alias": "pwned"});
    let attempts = [
        Request::new("PATCH", &target).json(&body),
        Request::new("PATCH", &target)
            .header("X-Runicorn-Token", "0".repeat(64).as_str())
            .json(&body),
        Request::new("PATCH", &target)
            .header("X-Runicorn-Token", &token)
            .header("Origin", "http://evil.example")
            .json(&body),
        Request::new("DELETE", &target).header("Origin", "http://evil.example"),
        Request::new("POST", &format!("/api/runs/{id}/restore"))
            .header("Origin", "http://evil.example")
            .header("Content-Type", "text/plain"),
    ];
    for req in attempts {
        let r = req.send(served.addr);
        assert_eq!(r.status, 403, "{req:?}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "forbidden");
    }
    let run = served.json(&target);
    assert_eq!(run["alias"], "own-runa");
    assert!(run["trashed_at"].is_null());
    // With the token and our own origin (or none, as same-origin fetches may send), it works.
    let r = Request::new("PATCH", &target)
        .header("X-Runicorn-Token", &token)
        .json(&json!({"alias": "mine"}))
        .send(served.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = served.write("PATCH", &target, Some(json!({"alias": null})));
    assert_eq!(r.status, 200, "{}", r.text());

    // Every API answer is JSON, mistakes included.
    let r = served.write("PUT", &target, Some(json!({})));
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    let r = served.get(&format!("/api/runs/{id}/files/%ff%fe"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "bad_request");
}
