// Managing remotes on the Remotes page in Chromium, against a real `runicorn-hub ui` following a
// remote (a local root synced by the real agent): sync now, pause and resume, rename, remove with
// its runs kept, then its runs deleted; each change reaches the following process (its state on
// the page) and the runs (through the API the runs table reads).
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, runHub, screenshot, startHub, tempDir } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");

let hub;
let browser;
let tmp;

before(async () => {
  tmp = tempDir();
  const hubDir = path.join(tmp.dir, "hub");
  const root = path.join(tmp.dir, "root");
  // The demo's sample runs, written into `root` and synced as remote "demo" (then renamed "lab").
  runHub(["--hub-dir", hubDir, "demo", "--once", "--no-ui", "--dir", root]);
  runHub(["--hub-dir", hubDir, "remotes", "rename", "demo", "lab"]);
  runHub(["--hub-dir", hubDir, "connect", `local:${root}`, "--name", "lab", "--agent", AGENT, "--once", "--no-ui"]);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
});

async function runsOf(remote) {
  const r = await fetch(new URL(`/api/runs?remote=${remote}&limit=100`, hub.url));
  const body = await r.json();
  return body.runs;
}

async function remoteRow(page, name, state) {
  const row = page.locator(`tr[data-remote="${name}"][data-state="${state}"]`);
  await row.waitFor({ timeout: 20_000 });
  return row;
}

test("the Remotes page pauses, resumes, syncs, renames and removes a remote", async () => {
  const errors = [];
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => {
    errors.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(`${hub.url}#/remotes`);
  let row = await remoteRow(page, "lab", "live");
  assert.match(await row.locator(".remote-state").textContent(), /followed by ui pid \d+/);
  const runs = (await runsOf("lab")).length;
  assert.ok(runs > 0);
  await screenshot(page, "remotes-page-manage");

  // Sync now reaches the follower: it says so, and the request is picked up.
  await row.locator('button[data-action="Sync now"]').click();
  await page.waitForFunction(() => /Asked ui pid \d+ .* to sync lab now/.test(document.querySelector(".remote-notice").textContent));

  // Pause: nobody follows it, its runs say paused; resume: followed again.
  await row.locator('button[data-action="Pause"]').click();
  row = await remoteRow(page, "lab", "paused");
  assert.match(await row.locator(".remote-state").textContent(), /nobody syncs it/);
  assert.ok((await runsOf("lab")).every((r) => r.remote_state === "paused"));
  await row.locator('button[data-action="Resume"]').click();
  row = await remoteRow(page, "lab", "live");

  // Rename: an inline input; Enter saves; the runs follow the new name.
  await row.locator('button[data-action="Rename"]').click();
  const input = row.locator("input.rename-input");
  await input.fill("lab-2");
  await input.press("Enter");
  row = await remoteRow(page, "lab-2", "live");
  assert.equal((await runsOf("lab-2")).length, runs);

  // Remove asks first; "keep runs" leaves them, marked.
  await row.locator('button[data-action="Remove"]').click();
  const confirm = row.locator(".remote-actions.confirm");
  assert.match(await confirm.textContent(), new RegExp(`Its ${runs} runs can stay`));
  await screenshot(page, "remotes-page-remove-confirm");
  await confirm.locator('button[data-action="Remove, keep runs"]').click();
  row = await remoteRow(page, "lab-2", "removed");
  const kept = await runsOf("lab-2");
  assert.equal(kept.length, runs);
  assert.ok(kept.every((r) => r.remote_state === "removed"));

  // Its runs deleted for good, after a confirmation.
  await row.locator('button[data-action="Delete runs"]').click();
  await row.locator(`button[data-action="Delete ${runs} runs"]`).click();
  await page.waitForFunction(() => document.querySelector('tr[data-remote="lab-2"]') === null, null, { timeout: 20_000 });
  assert.equal((await runsOf("lab-2")).length, 0);
  assert.deepEqual(errors, []);
  await page.close();
});
