//! The offline bundle reader (`runicorn_bundle::read_bundle`) over arbitrary bytes: what an
//! import reads from a file someone handed over.
//!
//! Checked: it never panics; it writes nothing outside the directory it is given (a sibling
//! sentinel directory stays empty); on an error the directory is left empty; on success every landed member is a regular file under the directory of
//! the size the manifest gives.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use runicorn_bundle::{read_bundle, Limits};
use runicorn_fuzz::scratch_dir;

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let base = scratch_dir().join("bundle");
    let _ = std::fs::remove_dir_all(&base);
    let dest = base.join("dest");
    let sentinel = base.join("sentinel");
    std::fs::create_dir_all(&dest).expect("scratch is writable");
    std::fs::create_dir_all(&sentinel).expect("scratch is writable");
    // Small limits keep each input quick; the rules are the same at any size.
    let limits = Limits {
        max_total_bytes: 64 << 20,
        ratio_grace_bytes: 1 << 20,
        ..Limits::default()
    };
    match read_bundle(data, &dest, &limits) {
        Ok(read) => {
            for member in &read.members {
                if let Some(location) = &member.location {
                    assert!(location.starts_with(&dest), "{location:?} outside the destination");
                    let meta = std::fs::symlink_metadata(location).expect("a landed member exists");
                    assert!(meta.is_file(), "{location:?} is not a regular file");
                    assert_eq!(meta.len(), member.size, "{location:?} has another size");
                }
            }
        }
        Err(e) => assert_eq!(entries(&dest), 0, "left behind after {e}"),
    }
    assert_eq!(entries(&sentinel), 0, "something was written beside the destination");
    assert_eq!(entries(&base), 2, "something was written beside the destination");
});
