//! Every check of a name that becomes a path: `check_wire_path` (what a peer sends), the run
//! path and file path checks of readers, the run id and file name checks and the run path
//! normalisation of writers, and the file-name sanitiser.
//!
//! Input: the name (bytes that are not UTF-8 are replaced, as a lossy listing would).
//!
//! Checked: nothing accepted holds a `..` segment, is absolute, holds a backslash or NUL, or is
//! longer than its limit; an accepted path joined to a root stays below it with no `..`
//! component; what a writer produces is accepted by readers and by the wire; the sanitiser always
//! yields a valid file name.

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use runicorn_protocol::run_format::names::{
    check_file_name_for_write, check_relative_file_path_for_read, check_run_id,
    check_run_path_for_read, normalize_run_path_for_write, sanitize_file_fragment,
    MAX_FILE_NAME_LEN, MAX_READ_FILE_PATH_LEN, MAX_READ_PATH_LEN, MAX_RUN_ID_LEN,
    MAX_WRITE_PATH_LEN,
};
use runicorn_protocol::wire::check_wire_path;

const ROOT: &str = "/storage/root";

/// What any accepted name must never be.
fn assert_contained(kind: &str, name: &str, max: usize) {
    assert!(name.len() <= max, "{kind} {name:?} longer than {max}");
    assert!(!name.starts_with('/'), "{kind} {name:?} is absolute");
    assert!(!name.contains('\\'), "{kind} {name:?} holds a backslash");
    assert!(!name.contains('\0'), "{kind} {name:?} holds a NUL");
    assert!(
        !name.split('/').any(|s| s == ".."),
        "{kind} {name:?} climbs with '..'"
    );
    let joined = Path::new(ROOT).join(name);
    assert!(joined.starts_with(ROOT), "{kind} {name:?} leaves the root");
    assert!(
        joined
            .components()
            .all(|c| !matches!(c, Component::ParentDir | Component::Prefix(_))),
        "{kind} {name:?} joins to {}",
        joined.display()
    );
}

fn is_single_safe_segment(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let name = name.as_ref();

    let wire = check_wire_path(name).is_ok();
    if wire {
        assert_contained("wire path", name, 4096);
        assert!(!name.is_empty());
        assert!(!name.split('/').any(|s| s.is_empty() || s == "."));
    }
    if check_run_path_for_read(name).is_ok() {
        assert_contained("run path", name, MAX_READ_PATH_LEN);
        assert!(!name.split('/').any(|s| s == "."));
        // A non-empty run path without empty segments is also a valid wire path.
        if !name.is_empty() && !name.split('/').any(str::is_empty) {
            assert!(wire, "run path {name:?} refused on the wire");
        }
    }
    if check_relative_file_path_for_read(name).is_ok() {
        assert_contained("file path", name, MAX_READ_FILE_PATH_LEN);
        assert!(wire, "file path {name:?} refused on the wire");
    }
    if check_run_id(name).is_ok() {
        assert!(
            is_single_safe_segment(name, MAX_RUN_ID_LEN),
            "run id {name:?}"
        );
        assert!(wire);
    }
    if check_file_name_for_write(name).is_ok() {
        assert!(
            is_single_safe_segment(name, MAX_FILE_NAME_LEN),
            "file name {name:?}"
        );
        assert!(wire);
    }
    if let Ok(normalized) = normalize_run_path_for_write(Some(name)) {
        assert_contained("written run path", &normalized, MAX_WRITE_PATH_LEN);
        assert!(
            check_run_path_for_read(&normalized).is_ok(),
            "readers refuse the written path {normalized:?}"
        );
        assert!(normalized.is_empty() || check_wire_path(&normalized).is_ok());
        assert!(normalized
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/')));
    }
    let fragment = sanitize_file_fragment(name);
    assert!(check_file_name_for_write(&fragment).is_ok(), "{fragment:?}");
    assert!(fragment.len() <= 64);
});
