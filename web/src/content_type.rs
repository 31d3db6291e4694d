//! Content types by file name: for the UI's own assets, and (stricter) for run files, where
//! only raster images keep their type and everything else that a browser could run (HTML, SVG,
//! JavaScript) is plain text.

/// The type of one of the UI's own files.
pub fn of_asset(name: &str) -> &'static str {
    match extension(name).as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        ext => raster_image(ext).unwrap_or("application/octet-stream"),
    }
}

/// The type a run's file is served with.
pub fn of_run_file(name: &str) -> &'static str {
    let ext = extension(name);
    if let Some(image) = raster_image(&ext) {
        return image;
    }
    match ext.as_str() {
        "svg" | "txt" | "log" | "json" | "jsonl" | "yaml" | "yml" | "toml" | "csv" | "md"
        | "py" | "html" | "htm" | "js" | "xml" | "cfg" | "ini" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn raster_image(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

fn extension(name: &str) -> String {
    let file = name.rsplit('/').next().unwrap_or(name);
    match file.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_files_never_get_an_active_type() {
        assert_eq!(of_run_file("media/a.PNG"), "image/png");
        assert_eq!(of_run_file("media/x.svg"), "text/plain; charset=utf-8");
        assert_eq!(of_run_file("page.html"), "text/plain; charset=utf-8");
        assert_eq!(of_run_file("model.bin"), "application/octet-stream");
        assert_eq!(of_run_file("noext"), "application/octet-stream");
    }

    #[test]
    fn ui_assets_keep_their_types() {
        assert_eq!(
            of_asset("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(of_asset("index.html"), "text/html; charset=utf-8");
    }
}
