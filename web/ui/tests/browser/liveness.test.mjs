// An outage as a user lives it: a run training on a "GPU server" (a real OpenSSH sshd on
// loopback, the run written by `runicorn-agent run` into its root), followed by
// `runicorn-hub ui`. While connected, the run page's header moves (points, last step) and its
// live dot is green; then sshd is stopped and its sessions killed, and within seconds the header
// says the remote is offline and when the hub last heard from it, the dot turns grey, and the
// Remotes page says offline too.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, runHub, screenshot, startHub, startSshd, tempDir } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");
// Appends a metrics event every 0.3 s for ten minutes (the run is killed before).
const TRAIN = `
import json, os, time
p = os.path.join(os.environ["RUNICORN_RUN_DIR"], "events.jsonl")
for step in range(1, 2000):
    t = time.time()
    with open(p, "a") as f:
        f.write(json.dumps({"ts": t, "type": "metrics", "data": {"loss": 1.0 / step, "global_step": step, "time": t}}) + "\\n")
    time.sleep(0.3)
`;

let sshd;
let hub;
let browser;
let tmp;
let trainer;

before(async () => {
  tmp = tempDir();
  sshd = await startSshd();
  // The hub's SSH client reads ~/.ssh of this HOME (its key, known_hosts).
  process.env.HOME = sshd.home;
  const root = path.join(tmp.dir, "root");
  const hubDir = path.join(tmp.dir, "hub");
  trainer = spawn(AGENT, ["run", "--root", root, "--path", "live/outage", "--alias", "trainer", "--heartbeat", "1", "-q", "--", "python3", "-c", TRAIN], {
    stdio: "ignore",
  });
  await new Promise((r) => setTimeout(r, 1500));
  runHub(["--hub-dir", hubDir, "connect", sshd.spec, "--name", "gpu", "--root", root, "--agent", AGENT, "--accept-new-host-key", "--once", "--no-ui"]);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  trainer?.kill("SIGKILL");
  await browser?.close();
  await hub?.stop();
  sshd?.cleanup();
  tmp?.cleanup();
});

async function api(target) {
  const r = await fetch(new URL(target, hub.url));
  const text = await r.text();
  assert.equal(r.status, 200, `${target}: ${text}`);
  return JSON.parse(text);
}

test("an outage turns the run page's header offline within seconds", async () => {
  const errors = [];
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));

  // Followed live by the ui.
  let run;
  for (let i = 0; i < 120; i++) {
    const { runs } = await api("/api/runs?remote=gpu");
    run = runs.find((r) => r.alias === "trainer");
    if (run?.remote_state === "live" && run.points > 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(run?.remote_state, "live", JSON.stringify(run));
  await page.goto(`${hub.url}#/run/${run.key}`);
  await page.waitForSelector(".run-header .run-name", { timeout: 30_000 });

  // Live: no liveness badge, a green dot, its key shown, and the header moving.
  assert.equal(await page.locator(".run-header .liveness-badge").count(), 0);
  assert.match(await page.getAttribute(".run-header .run-live-dot", "class"), /\bon\b/);
  assert.equal((await page.textContent('[data-fact="key"] .fact-value')).trim(), String(run.key));
  const points = async () => Number((await page.textContent('[data-fact="points"] .fact-value')).replace(/,/g, ""));
  const steps = async () => Number((await page.textContent('[data-fact="last_step"] .fact-value')).replace(/,/g, ""));
  const before = { points: await points(), step: await steps() };
  await page.waitForFunction(
    (b) => {
      const num = (f) => Number(document.querySelector(`[data-fact="${f}"] .fact-value`).textContent.replace(/,/g, ""));
      return num("points") > b.points && num("last_step") > b.step;
    },
    before,
    { timeout: 30_000 },
  );
  assert.equal(await page.locator('[data-fact="heard"]').isVisible(), false);

  // The outage: sshd stopped, its sessions killed.
  sshd.stop();
  const stoppedAt = Date.now();
  const badge = page.locator('.run-header .liveness-badge[data-remote-state="offline"]');
  await badge.waitFor({ timeout: 20_000 });
  const seconds = (Date.now() - stoppedAt) / 1000;
  assert.ok(seconds < 20, `offline shown after ${seconds} s`);
  assert.match(await badge.textContent(), /^offline · last heard (just now|\d+ s ago|\d+ min ago)$/);
  assert.doesNotMatch(await page.getAttribute(".run-header .run-live-dot", "class"), /\bon\b/);
  assert.equal(await page.locator('[data-fact="heard"]').isVisible(), true);
  assert.match(await page.getAttribute(".run-header .badge[data-status]", "class"), /\bstale\b/);
  await screenshot(page, "liveness-run-header-offline");

  // The API the runs table reads says the same of the run, and the Remotes page of the remote.
  const { runs } = await api("/api/runs?remote=gpu");
  assert.ok(runs.every((r) => r.remote_state === "offline"), JSON.stringify(runs.map((r) => r.remote_state)));
  // The runs table: every run of the remote wears the offline badge.
  await page.goto(`${hub.url}#/runs?remote=gpu`);
  await page.waitForFunction(
    (n) => document.querySelectorAll('tr.run-row .liveness-badge[data-remote-state="offline"]').length === n,
    runs.length,
    { timeout: 20_000 },
  );
  assert.match(
    await page.locator("tr.run-row .liveness-badge").first().textContent(),
    /^offline · last heard (just now|\d+ s ago|\d+ min ago)$/,
  );
  await screenshot(page, "liveness-runs-table-offline");
  await page.goto(`${hub.url}#/remotes`);
  const row = page.locator('tr[data-remote="gpu"]');
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await row.getAttribute("data-state"), "offline");
  assert.equal(await row.locator('button[data-action="Retry now"]').count(), 1);
  assert.deepEqual(errors, []);
  await page.close();
});
