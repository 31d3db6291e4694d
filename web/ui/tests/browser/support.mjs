// Shared helpers of the browser tests and the browser benchmark: the real hub as a child
// process, headless Debian Chromium through playwright-core, and screenshots.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = "runicorn-ui-") {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The folder screenshots go to (made if missing). */
export function screenshotDir() {
  const dir = process.env.RUNICORN_SCREENSHOTS ?? path.join(repoRoot, "web/ui/test-results/screenshots");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Starts `runicorn-hub` with `args` and resolves once it prints `dashboard: URL` on stderr.
 * Returns the URL, the child, its collected stderr and `stop()` (SIGTERM, then SIGKILL).
 */
export async function startHub(args, { bin, timeoutMs = 120_000 } = {}) {
  const exe = bin ?? process.env.RUNICORN_HUB_BIN ?? path.join(repoRoot, "target/debug/runicorn-hub");
  const child = spawn(exe, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let stderr = "";
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`runicorn-hub printed no dashboard line in ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${exe}: ${e.message} (build it with cargo build -p runicorn-hub -p runicorn-agent, or set RUNICORN_HUB_BIN)`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`runicorn-hub exited (${code ?? signal}) before serving:\n${stderr}`));
    });
    child.stderr.on("data", (d) => {
      stderr += d;
      const m = /dashboard: (http:\/\/[^\s]+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].endsWith("/") ? m[1] : `${m[1]}/`);
      }
    });
  });
  child.removeAllListeners("exit");
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { url, child, stop, output: () => ({ stderr, stdout }) };
}

/** Launches headless Chromium with a fresh profile; `close()` also removes the profile. */
export async function launchBrowser({ viewport = { width: 1400, height: 900 } } = {}) {
  const profile = tempDir("runicorn-chromium-");
  const context = await chromium.launchPersistentContext(profile.dir, {
    executablePath: process.env.RUNICORN_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  return {
    context,
    close: async () => {
      await context.close();
      profile.cleanup();
    },
  };
}

/** Saves a screenshot named `name.png` into the screenshot folder. */
export async function screenshot(page, name) {
  const file = path.join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
