// The Files tab when a run's server is gone: the real `runicorn-hub demo --once` syncs the sample
// runs into a store (fetching no file), the sample root is then deleted (a disk unmounted, a
// server gone), and `runicorn-hub ui --offline` serves that store. A file never fetched cannot be
// had: the tab says so plainly instead of showing an error code.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, screenshot, startHub, tempDir } from "./support.mjs";

let hub;
let browser;
let tmp;

before(async () => {
  tmp = tempDir();
  const exe = process.env.RUNICORN_HUB_BIN ?? path.join(repoRoot, "target/debug/runicorn-hub");
  const hubDir = path.join(tmp.dir, "hub");
  const root = path.join(tmp.dir, "root");
  const synced = spawnSync(exe, ["--hub-dir", hubDir, "demo", "--once", "--no-ui", "--dir", root], {
    env: { ...process.env, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(synced.status, 0, `demo --once failed:\n${synced.stderr}`);
  fs.rmSync(root, { recursive: true, force: true });
  hub = await startHub(["--hub-dir", hubDir, "ui", "--offline", "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
});

test("a file of an offline run that was never fetched says it is not available offline", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/runs`);
  await page.waitForSelector("tr.run-row a.run-link", { timeout: 30_000 });
  const id = await page.evaluate(() => {
    for (const link of document.querySelectorAll("tr.run-row a.run-link")) {
      if (link.textContent === "baseline") return Number(link.closest("tr").dataset.id);
    }
    return null;
  });
  assert.ok(id, "the baseline run is listed");
  await page.goto(`${hub.url}#/run/${id}?tab=files`);
  const row = '.file-tree .file-row[data-path="meta.json"]';
  await page.waitForSelector(row, { timeout: 30_000 });
  // Listed from the store, marked not cached, and opening it explains why it cannot be shown.
  assert.equal(await page.locator(`${row} .file-cached.is-cached`).count(), 0);
  await page.click(`${row} button.file-open`);
  const alert = page.locator('.file-view [role="alert"]');
  await alert.waitFor({ timeout: 30_000 });
  const text = await alert.textContent();
  assert.match(text, /Not available offline/);
  assert.match(text, /server cannot be reached/);
  assert.doesNotMatch(text, /503|remote_offline/);
  await alert.scrollIntoViewIfNeeded();
  await screenshot(page, "run-detail-files-offline");
  assert.deepEqual(errors, []);
  await page.close();
});
