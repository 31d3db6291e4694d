// Alerts in Chromium, against a real `runicorn-hub ui` following a local root through the real
// agent: runs with a NaN in a watched metric (`loss`, watched by default) and a failed run raise
// alerts; the top bar's badge counts them on every page, the alerts page lists them (kind, run
// link, remote, message) and acknowledges one and then all, the run page shows its alert, and a
// run that logs NaN while the page is open raises one browser notification (the permission
// granted in the browser context, `Notification` observed by an init script).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, runHub, screenshot, startHub, tempDir } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");

let hub;
let browser;
let tmp;
let root;

/** A run written as the SDKs write it; `loss` is NaN at step 2 when `nan`. */
function writeRun(id, { nan = false, status = "finished" } = {}) {
  const dir = path.join(root, "runs", "ui", id);
  fs.mkdirSync(dir, { recursive: true });
  const now = Date.now() / 1000;
  fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify({ id, path: "ui", created_at: now - 60, hostname: "gpu-box" }));
  const lines = [1, 2, 3].map((step) => {
    const loss = nan && step === 2 ? "NaN" : String(1 / step);
    return `{"ts": ${now - 60 + step}, "type": "metrics", "data": {"loss": ${loss}, "global_step": ${step}, "time": ${now - 60 + step}}}\n`;
  });
  fs.writeFileSync(path.join(dir, "events.jsonl"), lines.join(""));
  const exit = status === "failed" ? { exit_reason: "CUDA out of memory", exit_code: 1 } : {};
  fs.writeFileSync(path.join(dir, "status.json"), JSON.stringify({ status, started_at: now - 60, ended_at: now, ...exit }));
}

before(async () => {
  tmp = tempDir();
  const hubDir = path.join(tmp.dir, "hub");
  root = path.join(tmp.dir, "root");
  writeRun("nan-a", { nan: true });
  writeRun("nan-b", { nan: true });
  writeRun("oom", { status: "failed" });
  writeRun("fine");
  runHub(["--hub-dir", hubDir, "connect", `local:${root}`, "--name", "lab", "--agent", AGENT, "--once", "--no-ui"]);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--port", "0"]);
  browser = await launchBrowser();
  await browser.context.grantPermissions(["notifications"], { origin: new URL(hub.url).origin });
  await browser.context.addInitScript(() => {
    const Real = window.Notification;
    window.__notifications = [];
    function Observed(title, options) {
      window.__notifications.push({ title, body: options?.body ?? "" });
      try {
        return new Real(title, options);
      } catch {
        return {};
      }
    }
    Object.defineProperty(Observed, "permission", { get: () => Real.permission });
    Observed.requestPermission = (...a) => Real.requestPermission(...a);
    window.Notification = Observed;
  });
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
});

const badge = (page) => page.locator(".nav-link[data-page=alerts] .alert-count");

async function badgeSays(page, text) {
  await page.waitForFunction(
    (want) => (document.querySelector(".nav-link[data-page=alerts] .alert-count")?.textContent ?? "") === want,
    text,
    { timeout: 30_000 },
  );
}

test("the badge, the alerts page, acknowledging, the run page and a notification", async () => {
  const errors = [];
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));

  // The badge counts the three alerts on any page.
  await page.goto(`${hub.url}#/runs`);
  await badgeSays(page, "3");

  // The alerts page lists them: kind, a link to the run, the remote, the message.
  await page.locator(".nav-link[data-page=alerts]").click();
  const rows = page.locator(".alerts-page tbody tr");
  await rows.first().waitFor({ timeout: 20_000 });
  assert.equal(await rows.count(), 3);
  const text = await page.locator(".alerts-page table").textContent();
  assert.match(text, /NaN \/ Inf/);
  assert.match(text, /loss is NaN at step 2/);
  assert.match(text, /Failed/);
  assert.match(text, /CUDA out of memory/);
  assert.match(text, /lab\/nan-a/);
  assert.equal(await page.locator(".alert-notify").textContent(), "Notifications on");
  await screenshot(page, "alerts-page");

  // Acknowledge one: the list and the badge follow.
  const oom = page.locator(".alerts-page tbody tr", { hasText: "lab/oom" });
  await oom.locator("button.alert-ack").click();
  await badgeSays(page, "2");
  await page.waitForFunction(() => document.querySelectorAll(".alerts-page tbody tr").length === 2);
  assert.match(await page.locator(".alert-notice").textContent(), /Acknowledged 1 alert\./);

  // Acknowledged ones show on request.
  await page.locator(".alerts-toolbar a", { hasText: "Show acknowledged" }).click();
  await page.waitForFunction(() => document.querySelectorAll(".alerts-page tbody tr").length === 3);
  assert.match(await page.locator(".alerts-page tbody tr", { hasText: "lab/oom" }).textContent(), /acknowledged/);

  // The run page shows its alert.
  await page.locator("a.alert-run", { hasText: "lab/nan-a" }).click();
  const runAlerts = page.locator(".run-alerts tbody tr");
  await runAlerts.first().waitFor({ timeout: 20_000 });
  assert.equal(await runAlerts.count(), 1);
  assert.match(await runAlerts.textContent(), /loss is NaN at step 2/);

  // A run that logs NaN while the page is open: one notification, the badge counts it.
  writeRun("nan-live", { nan: true });
  await page.waitForFunction(() => window.__notifications.length >= 1, null, { timeout: 60_000 });
  await badgeSays(page, "3");
  await page.waitForTimeout(1500);
  const notes = await page.evaluate(() => window.__notifications);
  assert.equal(notes.length, 1, JSON.stringify(notes));
  assert.match(notes[0].title, /NaN \/ Inf — lab\/nan-live/);
  assert.equal(notes[0].body, "loss is NaN at step 2");

  // Acknowledge all: the badge goes away.
  await page.goto(`${hub.url}#/alerts`);
  await page.locator("button.alert-ack-all").click();
  await page.waitForFunction(() => document.querySelector(".nav-link[data-page=alerts] .alert-count")?.hidden === true);
  assert.equal(await badge(page).textContent(), "");
  await page.locator(".alerts-page .state-empty").waitFor({ timeout: 10_000 });
  assert.deepEqual(errors, []);
});
