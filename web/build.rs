//! Build script of `runicorn-web`: builds the browser UI in `ui/` with npm into
//! `$OUT_DIR/ui-dist` and hands the folder to `rust-embed` through `RUNICORN_UI_DIST`.
//!
//! `npm ci` runs only when `ui/node_modules` is missing or older than `package-lock.json`.
//! Setting `RUNICORN_UI_DIST` to an already built folder skips npm entirely (packagers, or a
//! machine without Node). Node is needed only to build: the binary carries the files.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

const INSTALL_HINT: &str = "The dashboard's browser UI is built with Node.js 18 or newer and npm \
(Debian/Ubuntu: `apt-get install nodejs npm`; \
macOS: `brew install node`), or set RUNICORN_UI_DIST to a folder holding an already built UI \
(`npm ci && npm run build` in web/ui makes web/ui/dist).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building the dashboard UI failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-env-changed=RUNICORN_UI_DIST");
    if let Some(dist) = env::var_os("RUNICORN_UI_DIST").filter(|d| !d.is_empty()) {
        let dist = PathBuf::from(dist);
        if !dist.join("index.html").is_file() {
            return Err(format!(
                "RUNICORN_UI_DIST={} has no index.html; point it at the output of `npm run build` in web/ui, or unset it",
                dist.display()
            ));
        }
        println!("cargo:rustc-env=RUNICORN_UI_DIST={}", dist.display());
        return Ok(());
    }

    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let ui = Path::new(&manifest_dir).join("ui");
    let out_dir = env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let dist = Path::new(&out_dir).join("ui-dist");

    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(input).display());
    }

    if needs_install(&ui) {
        npm(&ui, &["ci", "--no-audit", "--no-fund"])?;
    }
    let out = dist
        .to_str()
        .ok_or_else(|| format!("the build folder {} is not valid UTF-8", dist.display()))?;
    npm(
        &ui,
        &["run", "build", "--", "--outDir", out, "--emptyOutDir"],
    )?;
    if !dist.join("index.html").is_file() {
        return Err(format!(
            "`npm run build` finished but {} has no index.html",
            dist.display()
        ));
    }
    println!("cargo:rustc-env=RUNICORN_UI_DIST={}", dist.display());
    Ok(())
}

/// True when `node_modules` is missing or older than `package-lock.json`.
fn needs_install(ui: &Path) -> bool {
    let lock = modified(&ui.join("package-lock.json"));
    // npm rewrites node_modules/.package-lock.json on every install.
    let installed = modified(&ui.join("node_modules").join(".package-lock.json"))
        .or_else(|| modified(&ui.join("node_modules")));
    match (installed, lock) {
        (None, _) => true,
        (Some(installed), Some(lock)) => installed < lock,
        (Some(_), None) => false,
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn npm(ui: &Path, args: &[&str]) -> Result<(), String> {
    let shown = format!("npm {}", args.join(" "));
    let status = Command::new("npm")
        .args(args)
        .current_dir(ui)
        .env("NO_UPDATE_NOTIFIER", "1")
        // stdout of a build script is read by cargo: npm's output goes to stderr instead.
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("`npm` was not found. {INSTALL_HINT}")
            } else {
                format!(
                    "could not run `{shown}` in {}: {e}. {INSTALL_HINT}",
                    ui.display()
                )
            }
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` in {} failed ({status}); its output is above. Fix the error, or run it by hand in web/ui to see it.",
            ui.display()
        ))
    }
}
