// The Files tab when a run's server is gone: the real `runicorn-hub demo --once` syncs the sample
// runs into a store (fetching no file), the sample root is then deleted (a disk unmounted, a
// server gone), and `runicorn-hub ui --offline` serves that store. A file never fetched cannot be
// had: the tab says so plainly instead of showing an error code.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hubAndBrowser, runHub, screenshot } from "./support.mjs";

let hub;
let browser;
let tmp;

hubAndBrowser(
  (tmp) => {
    const hubDir = path.join(tmp.dir, "hub");
    const root = path.join(tmp.dir, "root");
    runHub(["--hub-dir", hubDir, "demo", "--once", "--no-ui", "--dir", root]);
    fs.rmSync(root, { recursive: true, force: true });
    return ["--hub-dir", hubDir, "ui", "--offline", "--port", "0"];
  },
  (f) => ({ hub, browser, tmp } = f),
);

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
