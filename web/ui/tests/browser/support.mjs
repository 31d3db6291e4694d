// Shared helpers of the browser tests and the browser benchmark: the real hub as a child
// process, headless Debian Chromium through playwright-core, and screenshots.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
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

/** Pids of every descendant of `root` (from /proc): an sshd's per-connection processes. */
export function descendantPids(root) {
  const parents = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const after = stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/);
    parents.push([Number(name), Number(after[1])]);
  }
  const found = [];
  const frontier = [root];
  while (frontier.length) {
    const parent = frontier.pop();
    for (const [pid, ppid] of parents) {
      if (ppid === parent && !found.includes(pid)) {
        found.push(pid);
        frontier.push(pid);
      }
    }
  }
  return found;
}

/**
 * A real OpenSSH server on 127.0.0.1 (as tests/src/sshd.rs starts one for the Rust tests): a
 * fresh host key and client key in a temp folder, and a client HOME holding the client key as
 * `~/.ssh/id_ed25519`. Resolves once it listens. `spec` is `user@127.0.0.1:PORT`; `stop()` kills
 * the listener AND its live sessions (an outage); `cleanup()` also removes the folders.
 */
export async function startSshd() {
  const tmp = tempDir("runicorn-sshd-");
  const home = path.join(tmp.dir, "client-home");
  mkdirSync(path.join(home, ".ssh"), { recursive: true, mode: 0o700 });
  const keygen = (file) => {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  };
  const hostKey = path.join(tmp.dir, "host_key");
  keygen(hostKey);
  const clientKey = path.join(home, ".ssh", "id_ed25519");
  keygen(clientKey);
  const authorized = path.join(tmp.dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`));
  mkdirSync("/run/sshd", { recursive: true });
  const user = spawnSync("id", ["-un"], { encoding: "utf8" }).stdout.trim();
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    const config = path.join(tmp.dir, "sshd_config");
    writeFileSync(
      config,
      [
        `ListenAddress 127.0.0.1:${port}`,
        `HostKey ${hostKey}`,
        "PidFile none",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        `AuthorizedKeysFile ${authorized}`,
        "Subsystem sftp internal-sftp",
        "UseDNS no",
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    const listening = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      child.stderr.on("data", (d) => {
        log += d;
        if (log.includes("Server listening on")) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!listening) {
      child.kill("SIGKILL");
      continue;
    }
    const stop = () => {
      for (const pid of descendantPids(child.pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      if (child.exitCode === null) child.kill("SIGKILL");
    };
    return {
      port,
      spec: `${user}@127.0.0.1:${port}`,
      home,
      log: () => log,
      stop,
      cleanup: () => {
        stop();
        tmp.cleanup();
      },
    };
  }
  tmp.cleanup();
  throw new Error("sshd did not start on any of 5 ports");
}

/** Runs `runicorn-hub ARGS` to its end (with `env` added); throws with its stderr on failure. */
export function runHub(args, { env = {}, timeoutMs = 120_000 } = {}) {
  const exe = process.env.RUNICORN_HUB_BIN ?? path.join(repoRoot, "target/debug/runicorn-hub");
  const r = spawnSync(exe, args, { env: { ...process.env, NO_COLOR: "1", ...env }, encoding: "utf8", timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`runicorn-hub ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}

/**
 * The usual set-up of a browser test file: before its tests, a temporary directory, whatever
 * `prepare(tmp)` does there (it returns the arguments of the hub to serve), that hub and a
 * headless Chromium, handed to `ready({ hub, browser, tmp })` (which may go on preparing: it is
 * awaited); after its tests, all of it stopped and removed. Set-up that needs the hub belongs in
 * `ready`: Node 20 does not wait for one root `before` hook before starting the next.
 */
export function hubAndBrowser(prepare, ready) {
  const fixture = {};
  before(async () => {
    fixture.tmp = tempDir();
    fixture.hub = await startHub(await prepare(fixture.tmp));
    fixture.browser = await launchBrowser();
    await ready(fixture);
  });
  after(async () => {
    await fixture.browser?.close();
    await fixture.hub?.stop();
    fixture.tmp?.cleanup();
  });
}

/** The arguments of `runicorn-hub demo` serving the dashboard on any port, in `tmp`. */
export function demoArgs(tmp) {
  return ["--hub-dir", path.join(tmp.dir, "hub"), "demo", "--dir", path.join(tmp.dir, "root"), "--port", "0"];
}
