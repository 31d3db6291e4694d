// Offline bundles in Chromium, between two real hubs: on hub A (`runicorn-hub ui` over the
// demo's runs) two selected runs are exported with "Export" (a real download); the file is
// dropped on hub B's page (an empty store), whose dialog previews the dry run (two new runs
// under the bundle's remote) and imports on "Import"; B's runs table then lists them. Importing
// the same file again through the "Import" button's file picker says nothing changes, and a
// file that is no bundle, and one cut short, are refused with the hub's message.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, runHub, screenshot, startHub, tempDir } from "./support.mjs";

let hubA;
let hubB;
let browser;
let tmp;

before(async () => {
  tmp = tempDir();
  const dirA = path.join(tmp.dir, "hub-a");
  const dirB = path.join(tmp.dir, "hub-b");
  runHub(["--hub-dir", dirA, "demo", "--once", "--no-ui", "--dir", path.join(tmp.dir, "root")]);
  hubA = await startHub(["--hub-dir", dirA, "ui", "--port", "0"]);
  hubB = await startHub(["--hub-dir", dirB, "ui", "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hubA?.stop();
  await hubB?.stop();
  tmp?.cleanup();
});

async function runsOf(hub) {
  const r = await fetch(new URL("/api/runs?limit=100&view=all", hub.url));
  return (await r.json()).runs;
}

/** Drops the file at `file` on the page, as a user dragging it from the desktop would. */
async function dropFile(page, file, name) {
  const b64 = readFileSync(file).toString("base64");
  await page.evaluate(
    ({ b64, name }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: "application/zstd" }));
      const target = document.querySelector("#content") ?? document.body;
      for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { b64, name },
  );
}

test("two runs exported from one hub's page import into another's, previewed first", async () => {
  const errors = [];
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));

  // Hub A: select two runs, Export downloads one bundle file.
  await page.goto(`${hubA.url}#/runs`);
  await page.locator("tr.run-row").first().waitFor({ timeout: 30_000 });
  const exportBtn = page.locator("button.export-bundle-btn");
  assert.equal(await exportBtn.isDisabled(), true, "Export waits for a selection");
  const rows = page.locator("tr.run-row");
  const chosen = [];
  for (const i of [0, 1]) {
    await rows.nth(i).locator("td.col-select input").check();
    chosen.push(await rows.nth(i).getAttribute("data-id"));
  }
  const chosenIds = (await runsOf(hubA)).filter((r) => chosen.includes(String(r.key))).map((r) => r.run_id).sort();
  assert.equal(chosenIds.length, 2, `keys ${chosen} are runs of hub A`);
  // "metadata only" asks for records, metrics and logs only.
  await page.locator("input.export-metadata-only").check();
  const [slim] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/bundles/export"), { timeout: 60_000 }),
    page.waitForEvent("download", { timeout: 60_000 }),
    exportBtn.click(),
  ]);
  assert.equal(slim.postDataJSON().metadata_only, true);
  await page.locator("input.export-metadata-only").uncheck();
  await exportBtn.waitFor({ state: "visible" });
  await page.waitForFunction(() => !document.querySelector("button.export-bundle-btn").disabled);
  const [request, download] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/bundles/export"), { timeout: 60_000 }),
    page.waitForEvent("download", { timeout: 60_000 }),
    exportBtn.click(),
  ]);
  assert.equal(request.postDataJSON().metadata_only, false);
  assert.match(download.suggestedFilename(), /^runicorn-2-runs-\d{4}-\d{2}-\d{2}\.rbundle$/);
  const file = path.join(tmp.dir, download.suggestedFilename());
  await download.saveAs(file);
  assert.equal(readFileSync(file).subarray(0, 4).toString("hex"), "28b52ffd", "a zstd stream");

  // Hub B: the file dropped on the page; the dry run's preview, then Import.
  await page.goto(`${hubB.url}#/runs`);
  await page.locator(".runs-page").waitFor();
  assert.equal((await runsOf(hubB)).length, 0);
  await dropFile(page, file, download.suggestedFilename());
  const preview = page.locator(".bundle-dialog .bundle-preview");
  await preview.waitFor({ timeout: 60_000 });
  const previewRuns = preview.locator("tr.bundle-run");
  assert.equal(await previewRuns.count(), 2);
  const ids = (await previewRuns.evaluateAll((trs) => trs.map((tr) => tr.dataset.runId))).sort();
  assert.deepEqual(ids, chosenIds);
  assert.deepEqual(await preview.locator(".verdict").allTextContents(), ["new", "new"]);
  assert.match(await preview.locator(".count-new").textContent(), /^2 new/);
  assert.match(await preview.locator(".bundle-summary").textContent(), /^Importing adds 2 new runs: \d+ points/);
  assert.equal((await runsOf(hubB)).length, 0, "a dry run changes nothing");
  await screenshot(page, "bundles-import-preview");

  await page.locator("button.bundle-confirm").click();
  await page.locator(".bundle-done").waitFor({ timeout: 60_000 });
  assert.match(await page.locator(".bundle-done").textContent(), /Imported: 2 new/);
  await page.locator("button.bundle-close").click();
  // The table refreshes from the live updates and lists the two runs.
  await page.waitForFunction((n) => document.querySelectorAll("tr.run-row").length === n, 2, { timeout: 30_000 });
  assert.deepEqual((await runsOf(hubB)).map((r) => r.run_id).sort(), chosenIds);
  await screenshot(page, "bundles-imported-runs");

  // Again, through the Import button's file picker: nothing would change.
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.locator("button.import-bundle-btn").click()]);
  await chooser.setFiles(file);
  await preview.waitFor({ timeout: 60_000 });
  assert.deepEqual(await preview.locator(".verdict").allTextContents(), ["unchanged", "unchanged"]);
  assert.match(await preview.locator(".bundle-summary").textContent(), /changes nothing/);
  await page.locator("button.bundle-cancel").click();
  assert.equal(await page.locator(".bundle-dialog").count(), 0);

  // Not a bundle: refused with the hub's message, nothing imported.
  const junk = path.join(tmp.dir, "notes.rbundle");
  writeFileSync(junk, "these are not the bytes of a bundle\n".repeat(100));
  await dropFile(page, junk, "notes.rbundle");
  await page.locator(".bundle-dialog .state-error").waitFor({ timeout: 60_000 });
  assert.match(await page.locator(".bundle-dialog .bundle-error-message").textContent(), /notes\.rbundle/);
  await page.locator("button.bundle-close").click();

  // Cut short: refused, naming the member the reader was in.
  const cut = path.join(tmp.dir, "cut.rbundle");
  const whole = readFileSync(file);
  writeFileSync(cut, whole.subarray(0, Math.floor((whole.length * 2) / 3)));
  await page.keyboard.press("j"); // the keyboard cursor on the first run, for "x" below
  await page.locator("tr.run-row.cursor").waitFor();
  await dropFile(page, cut, "cut.rbundle");
  await page.locator(".bundle-dialog .state-error").waitFor({ timeout: 60_000 });
  assert.match(await page.locator(".bundle-dialog .bundle-error-message").textContent(), /cut\.rbundle/);
  assert.match(await page.locator(".bundle-dialog .bundle-member").textContent(), /^Member: \S+/);
  await screenshot(page, "bundles-import-refused");
  // Shortcuts of the page behind do not act while the dialog is open (x would select a run).
  await page.keyboard.press("x");
  assert.equal(await page.locator("tr.run-row td.col-select input:checked").count(), 0);
  await page.keyboard.press("Escape");
  assert.equal(await page.locator(".bundle-dialog").count(), 0, "Escape closes the dialog");
  await page.keyboard.press("x");
  assert.equal(await page.locator("tr.run-row td.col-select input:checked").count(), 1, "x selects once the dialog is closed");
  assert.equal((await runsOf(hubB)).length, 2);
  assert.deepEqual(errors, []);
});
