// Offline bundles in Chromium, between two real hubs: on hub A (`runicorn-hub ui` over the
// demo's runs) two selected runs are exported with "Export" (a real download); the file is
// dropped on hub B's page (an empty store), whose dialog previews the dry run (two new runs
// under the bundle's remote) and imports on "Import"; B's runs table then lists them. Importing
// the same file again through the "Import" button's file picker says nothing changes, and a
// file that is no bundle, and one cut short, are refused with the hub's message. B's runs and
// Remotes page say their remote is imported, dated by the bundle (not "not followed"). The runs
// toolbar, with runs selected, fits on one line at 1,280 and 1,400 px and its export option is
// reached by keyboard.
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

/** The top of each control on the runs toolbar, by its class; every one must be on one line. */
async function toolbarTops(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".toolbar > :not(.spacer)")]
      .filter((el) => el.offsetParent !== null)
      .map((el) => ({ what: el.className, top: el.getBoundingClientRect().top, bottom: el.getBoundingClientRect().bottom })),
  );
}

function assertOneLine(tops, width) {
  assert.ok(tops.length >= 8, `the toolbar's controls at ${width} px: ${JSON.stringify(tops)}`);
  const lowestTop = Math.max(...tops.map((t) => t.top));
  const highestBottom = Math.min(...tops.map((t) => t.bottom));
  // One line: every control overlaps every other vertically (a wrapped one starts below).
  assert.ok(lowestTop < highestBottom, `the toolbar wraps at ${width} px: ${JSON.stringify(tops)}`);
}

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
  // With runs selected every action shows; the toolbar stays on one line from 1,280 px up.
  await page.locator(".sel-info", { hasText: "2 selected" }).waitFor();
  for (const width of [1280, 1400]) {
    await page.setViewportSize({ width, height: 900 });
    assertOneLine(await toolbarTops(page), width);
  }
  await screenshot(page, "bundles-runs-toolbar-1400");
  // Export and its options are one control, every part reached by keyboard.
  await exportBtn.focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.className), "export-options-toggle");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.className), "export-metadata-only");
  await page.keyboard.press("Space");
  assert.equal(await page.locator("input.export-metadata-only").isChecked(), true);
  await page.keyboard.press("Space");
  assert.equal(await page.locator("input.export-metadata-only").isChecked(), false);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.className), "export-with-artifacts");
  await screenshot(page, "bundles-export-options");
  const optionsOpen = () => page.locator("details.export-options").evaluate((d) => d.open);
  await page.keyboard.press("Escape");
  assert.equal(await optionsOpen(), false, "Escape closes the options");
  await page.locator("summary.export-options-toggle").click();
  await page.locator("h1, h2").first().click();
  assert.equal(await optionsOpen(), false, "a click elsewhere closes them");
  await page.locator("summary.export-options-toggle").click();
  // "metadata only" asks for records, metrics and logs only; "artifacts" for the versions too.
  await page.locator("input.export-metadata-only").check();
  await page.locator("input.export-with-artifacts").check();
  const [slim] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/bundles/exports"), { timeout: 60_000 }),
    page.waitForEvent("download", { timeout: 60_000 }),
    exportBtn.click(),
  ]);
  assert.equal(slim.postDataJSON().metadata_only, true);
  assert.equal(slim.postDataJSON().with_artifacts, true);
  assert.equal(await optionsOpen(), false, "clicking Export closed the options");
  await page.locator("summary.export-options-toggle").click();
  await page.locator("input.export-metadata-only").uncheck();
  await page.locator("input.export-with-artifacts").uncheck();
  await exportBtn.waitFor({ state: "visible" });
  await page.waitForFunction(() => !document.querySelector("button.export-bundle-btn").disabled);
  // The bundle is written first, then downloaded by a plain GET (saved straight to disk).
  const [request, download] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/api/bundles/exports"), { timeout: 60_000 }),
    page.waitForEvent("download", { timeout: 60_000 }),
    exportBtn.click(),
  ]);
  assert.equal(request.postDataJSON().metadata_only, false);
  assert.match(download.url(), /\/api\/bundles\/exports\/[0-9a-f]{32}-2$/);
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
  // Their remote is known only from the bundle: "imported", dated by the bundle, a neutral badge.
  const importedRuns = await runsOf(hubB);
  assert.deepEqual(importedRuns.map((r) => r.remote_state), ["imported", "imported"]);
  const made = importedRuns[0].remote_heard_at;
  assert.equal(typeof made, "number", "an import dates its remote by the bundle's creation");
  const madeOn = await page.evaluate((t) => {
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  }, made);
  const badges = page.locator("tr.run-row .liveness-badge");
  assert.deepEqual(await badges.allTextContents(), [`imported · bundle of ${madeOn}`, `imported · bundle of ${madeOn}`]);
  assert.equal(await badges.first().getAttribute("data-remote-state"), "imported");
  const colours = await badges.first().evaluate((el) => {
    const probe = document.createElement("span");
    probe.style.color = "var(--danger)";
    document.body.append(probe);
    const danger = getComputedStyle(probe).color;
    probe.remove();
    return { badge: getComputedStyle(el).color, danger };
  });
  assert.notEqual(colours.badge, colours.danger, "an imported remote is not a warning");
  await screenshot(page, "bundles-imported-runs");
  // So does a run's page: its header's badge, and when the bundle was made.
  await page.goto(`${hubB.url}#/run/${importedRuns[0].key}`);
  const headerBadge = page.locator(".run-liveness .liveness-badge");
  await headerBadge.waitFor({ timeout: 30_000 });
  assert.equal(await headerBadge.textContent(), `imported · bundle of ${madeOn}`);
  assert.equal(await page.locator('[data-fact="heard"] .fact-label').textContent(), "Bundle made");
  // The Remotes page says the same, and offers nothing to sync or pause.
  const remoteName = importedRuns[0].remote;
  await page.goto(`${hubB.url}#/remotes`);
  const remoteRow = page.locator(`tr[data-remote="${remoteName}"]`);
  await remoteRow.waitFor({ timeout: 30_000 });
  assert.equal(await remoteRow.getAttribute("data-state"), "imported");
  assert.equal(await remoteRow.locator(".remote-state-label").textContent(), `imported · bundle of ${madeOn}`);
  assert.match(await remoteRow.locator(".remote-state").textContent(), /known only from imported bundles/);
  assert.doesNotMatch(await remoteRow.locator(".remote-state").textContent(), /last heard|not followed/);
  for (const action of ["Sync now", "Retry now", "Pause"]) {
    assert.equal(await remoteRow.locator(`button[data-action="${action}"]`).count(), 0, `no ${action} for an imported remote`);
  }
  await screenshot(page, "bundles-imported-remote");
  await page.goto(`${hubB.url}#/runs`);
  await page.waitForFunction((n) => document.querySelectorAll("tr.run-row").length === n, 2, { timeout: 30_000 });

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
