//! `GET /api/runs/{id}/logs`: pages by byte offset that end at a line and tile the file, and
//! the tail when no offset is given.

use super::world::{run_by_run_id, World};

#[test]
fn logs_are_paged_by_byte_offset_at_line_boundaries() {
    let world = World::new();
    let served = world.serve();
    let id = run_by_run_id(&served, "runa")["key"].as_i64().unwrap();
    let full = served.json(&format!("/api/runs/{id}/logs?offset=0&limit=1048576"));
    let text = full["text"].as_str().unwrap().to_owned();
    assert_eq!(full["eof"], true);
    assert_eq!(full["start"], 0);
    assert_eq!(full["end"].as_u64().unwrap() as usize, text.len());
    assert_eq!(text.lines().count(), 300);

    let mut offset = 0;
    let mut joined = String::new();
    let mut pages = 0;
    loop {
        let page = served.json(&format!("/api/runs/{id}/logs?offset={offset}&limit=1000"));
        let t = page["text"].as_str().unwrap();
        assert!(t.len() <= 1000);
        assert!(
            t.is_empty() || t.ends_with('\n'),
            "pages end at a line: {t:?}"
        );
        assert_eq!(page["offset"], offset);
        joined.push_str(t);
        offset = page["next"].as_u64().unwrap();
        pages += 1;
        if page["eof"] == true {
            break;
        }
        assert!(pages < 100);
    }
    assert_eq!(joined, text);
    assert!(pages > 5);

    // Without offset: the tail, starting at a whole line.
    let tail = served.json(&format!("/api/runs/{id}/logs?limit=500"));
    let t = tail["text"].as_str().unwrap();
    assert!(t.len() <= 500);
    assert!(text.ends_with(t));
    assert!(t.contains("line 299"), "{t}");
    assert!(
        text[..tail["offset"].as_u64().unwrap() as usize].ends_with('\n'),
        "the tail starts at a line"
    );
    assert_eq!(tail["eof"], true);
}
