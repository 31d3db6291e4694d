//! Validation of every name that becomes a path: run paths, run ids and file names inside a run.
//!
//! Writers are strict (upstream's character set, so upstream can read what we write); readers
//! are looser (they accept whatever an older writer produced) but never accept a name that could
//! escape the storage root: no `..`, nothing absolute, no NUL, bounded length.

use chrono::Local;

/// Longest run path a writer creates (upstream's limit).
pub const MAX_WRITE_PATH_LEN: usize = 200;
/// Longest run path a reader accepts.
pub const MAX_READ_PATH_LEN: usize = 1024;
/// Longest run id.
pub const MAX_RUN_ID_LEN: usize = 128;
/// Longest single file name a writer creates.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Longest relative file path (inside a run) a reader accepts.
pub const MAX_READ_FILE_PATH_LEN: usize = 4096;

/// Why a name was refused. The message says what the name was and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} {name:?} is empty")]
    Empty { kind: &'static str, name: String },
    #[error("{kind} {name:?} is longer than {max} bytes")]
    TooLong {
        kind: &'static str,
        name: String,
        max: usize,
    },
    #[error("{kind} {name:?} contains a NUL byte")]
    Nul { kind: &'static str, name: String },
    #[error("{kind} {name:?} is absolute; it must be relative to the storage root")]
    Absolute { kind: &'static str, name: String },
    #[error("{kind} {name:?} has a '..' or '.' segment, which could leave the storage root")]
    DotSegment { kind: &'static str, name: String },
    #[error("{kind} {name:?} contains {ch:?}; allowed: {allowed}")]
    BadChar {
        kind: &'static str,
        name: String,
        ch: char,
        allowed: &'static str,
    },
}

fn check_common(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            name: truncate_for_message(name),
            max,
        });
    }
    if name.contains('\0') {
        return Err(NameError::Nul {
            kind,
            name: name.replace('\0', "\\0"),
        });
    }
    Ok(())
}

/// Longest rendering [`escaped_name`] gives (in characters, before the ellipsis).
const MAX_ESCAPED_CHARS: usize = 200;

/// A name as people may see it, never to act on: lossy UTF-8 (invalid bytes become U+FFFD),
/// control characters and backslashes escaped (`\u{1b}`, `\\`), at most 200 characters.
pub fn escaped_name(raw: &std::ffi::OsStr) -> String {
    let text = raw.to_string_lossy();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_ESCAPED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a path relative to the storage root (or to a run directory) cannot be put on the wire:
/// the rules of `wire::check_wire_path`, and no control characters (which a peer would show
/// raw). `None` when it can.
pub fn wire_name_problem(path: &str) -> Option<String> {
    if let Err(reason) = crate::wire::check_wire_path(path) {
        return Some(reason);
    }
    path.chars()
        .find(|c| c.is_control())
        .map(|c| format!("the name holds the control character {c:?}"))
}

fn truncate_for_message(name: &str) -> String {
    name.chars().take(64).collect::<String>() + "…"
}

/// Checks a run path as read from disk or from a peer (`cv/resnet`, or `""` for the root).
pub fn check_run_path_for_read(path: &str) -> Result<(), NameError> {
    const KIND: &str = "run path";
    check_common(KIND, path, MAX_READ_PATH_LEN)?;
    if path.starts_with('/') || path.contains('\\') || has_drive_prefix(path) {
        return Err(NameError::Absolute {
            kind: KIND,
            name: path.to_owned(),
        });
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(NameError::DotSegment {
            kind: KIND,
            name: path.to_owned(),
        });
    }
    Ok(())
}

fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic()
}

/// Normalises and checks a run path given to a writer, the way upstream does: `None` means
/// `default`, `""` and `/` mean the root of `runs/`, backslashes become slashes, empty segments
/// are dropped, and only `[A-Za-z0-9_-]` may appear in a segment.
pub fn normalize_run_path_for_write(path: Option<&str>) -> Result<String, NameError> {
    const KIND: &str = "run path";
    let Some(raw) = path else {
        return Ok("default".to_owned());
    };
    let replaced = raw.replace('\\', "/");
    check_common(KIND, &replaced, MAX_WRITE_PATH_LEN)?;
    let mut segments = Vec::new();
    for seg in replaced.split('/').filter(|s| !s.is_empty()) {
        if seg == ".." || seg == "." {
            return Err(NameError::DotSegment {
                kind: KIND,
                name: raw.to_owned(),
            });
        }
        if let Some(ch) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(NameError::BadChar {
                kind: KIND,
                name: raw.to_owned(),
                ch,
                allowed: "letters, digits, '_', '-' and '/' between segments",
            });
        }
        segments.push(seg);
    }
    Ok(segments.join("/"))
}

/// Checks a run id (`20261126_122856_0e66f9`, or a custom id).
pub fn check_run_id(id: &str) -> Result<(), NameError> {
    check_single_segment("run id", id, MAX_RUN_ID_LEN)
}

/// Checks a file name a writer is about to create inside a run (one segment, e.g. a media file).
pub fn check_file_name_for_write(name: &str) -> Result<(), NameError> {
    check_single_segment("file name", name, MAX_FILE_NAME_LEN)
}

/// One path segment of `[A-Za-z0-9_.-]`, not empty, not hidden, at most `max` bytes.
fn check_single_segment(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty {
            kind,
            name: String::new(),
        });
    }
    check_common(kind, name, max)?;
    if name.starts_with('.') {
        return Err(NameError::DotSegment {
            kind,
            name: name.to_owned(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameError::BadChar {
            kind,
            name: name.to_owned(),
            ch,
            allowed: "letters, digits, '_', '-' and '.'",
        });
    }
    Ok(())
}

/// Checks a relative file path inside a run as read from disk or a peer (`media/x.png`).
pub fn check_relative_file_path_for_read(path: &str) -> Result<(), NameError> {
    const KIND: &str = "file path";
    if path.is_empty() {
        return Err(NameError::Empty {
            kind: KIND,
            name: String::new(),
        });
    }
    check_common(KIND, path, MAX_READ_FILE_PATH_LEN)?;
    if path.starts_with('/') || path.contains('\\') || has_drive_prefix(path) {
        return Err(NameError::Absolute {
            kind: KIND,
            name: path.to_owned(),
        });
    }
    if path
        .split('/')
        .any(|seg| seg == ".." || seg == "." || seg.is_empty())
    {
        return Err(NameError::DotSegment {
            kind: KIND,
            name: path.to_owned(),
        });
    }
    Ok(())
}

/// Makes a fresh run id in upstream's shape: `YYYYMMDD_HHMMSS_<6 hex>` in local time.
pub fn generate_run_id() -> String {
    let now = Local::now();
    format!(
        "{}_{:06x}",
        now.format("%Y%m%d_%H%M%S"),
        fastrand::u32(..0x0100_0000)
    )
}

/// Turns an arbitrary key (a metric or image key) into a safe file-name fragment.
pub fn sanitize_file_fragment(key: &str) -> String {
    let cleaned: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// The key and time of an image the writers saved as `media/<epoch_ms>_<hex>_<key>.<ext>` (an
/// image extension), read from its name alone (readers that lack its `image` event); another
/// name under `media/` gives its stem as the key and no time; `None` for any other file.
pub fn media_image_key(path: &str) -> Option<(String, Option<f64>)> {
    let name = path.strip_prefix("media/")?;
    let (stem, ext) = name.rsplit_once('.')?;
    if !matches!(
        ext.to_ascii_lowercase().as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "webp"
    ) {
        return None;
    }
    let mut parts = stem.splitn(3, '_');
    let (ms, hex, key) = (parts.next()?, parts.next(), parts.next());
    match (ms.parse::<u64>(), hex, key) {
        (Ok(ms), Some(_), Some(key)) if !key.is_empty() => {
            Some((key.to_owned(), Some(ms as f64 / 1000.0)))
        }
        _ => Some((stem.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_paths_follow_upstream_rules() {
        assert_eq!(normalize_run_path_for_write(None).unwrap(), "default");
        assert_eq!(normalize_run_path_for_write(Some("")).unwrap(), "");
        assert_eq!(normalize_run_path_for_write(Some("/")).unwrap(), "");
        assert_eq!(
            normalize_run_path_for_write(Some("cv\\yolo//a-b_c/")).unwrap(),
            "cv/yolo/a-b_c"
        );
        assert!(matches!(
            normalize_run_path_for_write(Some("a/../b")),
            Err(NameError::DotSegment { .. })
        ));
        assert!(matches!(
            normalize_run_path_for_write(Some("a b")),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            normalize_run_path_for_write(Some(&"a".repeat(201))),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn read_paths_refuse_escapes_only() {
        assert!(check_run_path_for_read("cv/res net.v2").is_ok());
        assert!(check_run_path_for_read("").is_ok());
        for bad in ["/etc", "a/../../x", "..", "a\\b", "C:evil", "a\0b", "./a"] {
            assert!(
                check_run_path_for_read(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn run_ids_and_file_names() {
        let id = generate_run_id();
        assert_eq!(id.len(), 22, "{id}");
        check_run_id(&id).unwrap();
        assert!(check_run_id("").is_err());
        assert!(check_run_id(".hidden").is_err());
        assert!(check_run_id("a/b").is_err());
        assert!(check_file_name_for_write("123_abc_img.png").is_ok());
        assert!(check_file_name_for_write("../x").is_err());
        assert!(check_relative_file_path_for_read("media/x.png").is_ok());
        assert!(check_relative_file_path_for_read("media/../../x").is_err());
        assert!(check_relative_file_path_for_read("/abs").is_err());
        assert_eq!(sanitize_file_fragment("train/img 1"), "train_img_1");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::path::{Component, Path};

        proptest! {
            /// Whatever a peer or a file system hands a reader, an accepted run path joined to
            /// the root never climbs out of it.
            #[test]
            fn accepted_read_paths_stay_below_the_root(path in "[a-z./\\\\:\\x00-]{0,24}") {
                if check_run_path_for_read(&path).is_ok() {
                    let joined = Path::new("/root-dir/runs").join(&path);
                    prop_assert!(joined.starts_with("/root-dir/runs"));
                    prop_assert!(joined.components().all(|c| !matches!(c, Component::ParentDir)));
                }
            }

            /// Whatever a user passes as `--path`, the normalised result is accepted by readers.
            #[test]
            fn written_paths_are_readable(path in "\\PC{0,40}") {
                if let Ok(normalized) = normalize_run_path_for_write(Some(&path)) {
                    prop_assert!(check_run_path_for_read(&normalized).is_ok());
                    prop_assert!(normalized.len() <= MAX_WRITE_PATH_LEN);
                }
            }
        }
    }

    #[test]
    fn media_file_names_give_the_image_key() {
        assert_eq!(
            media_image_key("media/1795696136316_bef569_img_a.png"),
            Some(("img_a".to_owned(), Some(1_795_696_136.316)))
        );
        assert_eq!(
            media_image_key("media/photo.jpg"),
            Some(("photo".to_owned(), None))
        );
        assert_eq!(media_image_key("media/notes.txt"), None);
        assert_eq!(media_image_key("logs.txt"), None);
    }
}
