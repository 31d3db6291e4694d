// The Artifacts page, a run's Artifacts tab and the lineage graph in Chromium. A storage root is
// written by our Python SDK (tests/support/artifact_world.py: model `resnet` v1..v3 by run
// train01, `best` moved to v3; run eval01 used resnet:v1 and logged dataset `preds`; run serve01
// used preds), synced by the real agent with `runicorn-hub connect local:ROOT --once`, and served
// by `runicorn-hub ui`. The page shows the versions, aliases, sizes and bytes saved; the graph
// shows the runs and versions, and clicking through goes from a version to its run and back.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hubAndBrowser, repoRoot, runHub, screenshot } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");
const PYTHON = process.env.RUNICORN_TEST_PYTHON ?? "python3";

let hub;
let browser;
let tmp;

hubAndBrowser(
  (tmp) => {
    const hubDir = path.join(tmp.dir, "hub");
    const root = path.join(tmp.dir, "root");
    fs.mkdirSync(root);
    const wrote = spawnSync(PYTHON, [path.join(repoRoot, "tests/support/artifact_world.py"), root], {
      env: { ...process.env, PYTHONPATH: path.join(repoRoot, "sdk/python/src"), RUNICORN_DIR: "" },
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(wrote.status, 0, `artifact_world.py failed:\n${wrote.stderr}`);
    // An upstream 0.7-style assets.json on the serving run.
    fs.writeFileSync(
      path.join(root, "runs/serve/api/serve01/assets.json"),
      JSON.stringify({
        code: { snapshot: { saved: true, format: "zip", workspace_root: "/work/proj", fingerprint: "ab".repeat(32) } },
        config: { args: {}, extra: {}, config_files: ["conf/a.yaml"] },
        datasets: [{ name: "mnist", context: "train", uri: "/data/mnist", saved: true, file_count: 3, total_size_bytes: 1234 }],
        pretrained: [{ name: "bert-base", source_type: "huggingface", path_or_uri: "bert-base-uncased", saved: false }],
        outputs: [],
      }),
    );
    runHub(["--hub-dir", hubDir, "connect", `local:${root}`, "--name", "lab", "--agent", AGENT, "--once", "--no-ui"]);
    return ["--hub-dir", hubDir, "ui", "--offline", "--port", "0"];
  },
  (f) => ({ hub, browser, tmp } = f),
);

test("the Artifacts page lists versions by type with aliases, sizes and bytes saved", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/artifacts`);
  await page.waitForSelector('tr.artifact-row[data-artifact="lab/model/resnet"]', { timeout: 30_000 });
  const types = await page.locator("section.artifact-type h2").allTextContents();
  assert.deepEqual(types, ["dataset", "model"]);
  const row = page.locator('tr.artifact-row[data-artifact="lab/model/resnet"]');
  const cells = await row.locator("td").allTextContents();
  assert.equal(cells[2], "3", "three versions");
  assert.match(cells[3], /resnet:v3/);
  assert.match(cells[3], /latest/);
  assert.match(cells[3], /best/);
  // vocab.txt (11,000 bytes) is the same in all three versions: two copies saved.
  assert.match(cells[6], /^21 KiB \(49 %\)$/);
  assert.match(await page.locator(".artifacts-summary").textContent(), /2 artifacts · 4 versions/);
  // The type chips filter.
  await page.click('.type-chips a[data-type="dataset"]');
  await page.waitForFunction(() => document.querySelectorAll("tr.artifact-row").length === 1);
  assert.equal(await page.locator('tr.artifact-row[data-artifact="lab/dataset/preds"]').count(), 1);
  await page.click(".type-chips a:first-child");
  await page.waitForSelector('tr.artifact-row[data-artifact="lab/model/resnet"]');
  await screenshot(page, "artifacts-page");

  // One artifact: its versions, who produced and used each, the files with Download links.
  await page.click('tr.artifact-row[data-artifact="lab/model/resnet"] a.artifact-link');
  await page.waitForSelector("table.versions-table tr.version-row");
  const versions = await page.locator("table.versions-table tr.version-row").evaluateAll((rows) => rows.map((r) => r.dataset.version));
  assert.deepEqual(versions, ["3", "2", "1"]);
  const v1 = page.locator('tr.version-row[data-version="1"]');
  assert.equal(await v1.locator(".produced-by a.run-link").textContent(), "train01");
  assert.equal(await v1.locator(".used-by a.run-link").textContent(), "eval01");
  assert.deepEqual(await page.locator('tr.version-row[data-version="3"] .alias-chip').allTextContents(), ["latest", "best"]);
  const files = await page.locator("table.files-table tr.artifact-file").evaluateAll((rows) => rows.map((r) => r.dataset.path));
  assert.deepEqual(files, ["model.pt", "vocab.txt"]);
  const href = await page.locator('tr.artifact-file[data-path="model.pt"] a.download-link').getAttribute("href");
  assert.equal(href, "/api/artifacts/lab/model/resnet/v3/files/model.pt");
  // The lineage graph of the newest version.
  await page.waitForSelector(".lineage-svg [data-kind=version].lineage-root");
  assert.equal(await page.locator('.lineage-svg a[data-kind="run"]', { hasText: "train01" }).count(), 1, "v3's producer");
  await screenshot(page, "artifact-detail");
  assert.deepEqual(errors, []);
  await page.close();
});

test("the lineage graph shows runs and versions and clicks through both ways", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/artifacts?artifact=lab%2Fmodel%2Fresnet&version=1`);
  await page.waitForSelector('tr.version-row.selected[data-version="1"]', { timeout: 30_000 });
  await page.click('tr.version-row[data-version="1"] a.lineage-link');
  await page.waitForSelector(".lineage-page .lineage-svg");
  // resnet:v1 with its producer and its user, and everything further out (depth 4).
  const titles = await page.locator(".lineage-svg .lineage-node .lineage-title").allTextContents();
  for (const want of ["resnet:v1", "train01", "eval01", "preds:v1 (latest)", "serve01", "resnet:v2", "resnet:v3 (latest, best)"]) {
    assert.ok(titles.includes(want), `${want} in ${JSON.stringify(titles)}`);
  }
  assert.equal(await page.locator(".lineage-svg path.lineage-edge").count(), 6);
  assert.equal(await page.locator(".lineage-svg path.lineage-edge-used").count(), 2);
  // Producers sit left of their versions, users right.
  const x = async (title) =>
    page.evaluate((t) => {
      for (const n of document.querySelectorAll(".lineage-svg .lineage-node")) {
        if (n.querySelector(".lineage-title")?.textContent === t) return Number(n.querySelector("rect").getAttribute("x"));
      }
      return null;
    }, title);
  assert.ok((await x("train01")) < (await x("resnet:v1")));
  assert.ok((await x("resnet:v1")) < (await x("eval01")));
  assert.ok((await x("eval01")) < (await x("preds:v1 (latest)")));
  await screenshot(page, "artifacts-lineage");

  // Version → run: the run's page opens on its Artifacts tab.
  await page.locator(".lineage-svg a.lineage-node", { hasText: "eval01" }).click();
  await page.waitForSelector(".run-artifacts table.run-versions", { timeout: 30_000 });
  const used = await page.locator(".run-artifacts table.run-versions").nth(1).locator("a.version-link").allTextContents();
  assert.deepEqual(used, ["resnet:v1"]);
  const produced = await page.locator(".run-artifacts table.run-versions").nth(0).locator("a.version-link").allTextContents();
  assert.deepEqual(produced, ["preds:v1"]);
  await page.waitForSelector(".run-artifacts .lineage-svg");
  // Run → version, through the graph on the run's page.
  await page.locator(".run-artifacts .lineage-svg a.lineage-node", { hasText: "preds:v1" }).click();
  await page.waitForSelector('.artifacts-page tr.version-row.selected[data-version="1"]', { timeout: 30_000 });
  assert.match(await page.locator(".artifacts-page h1").textContent(), /preds/);
  assert.equal(await page.locator(".used-by a.run-link").textContent(), "serve01");
  // And on to the run that used it, whose tab shows its upstream assets.
  await page.click(".used-by a.run-link");
  await page.waitForSelector(".run-artifacts .run-assets", { timeout: 30_000 });
  const assets = await page.locator(".run-assets").textContent();
  assert.match(assets, /Code snapshot/);
  assert.match(assets, /zip saved from \/work\/proj/);
  assert.match(assets, /conf\/a\.yaml/);
  assert.match(assets, /mnist/);
  assert.match(assets, /bert-base/);
  await page.locator(".run-assets").scrollIntoViewIfNeeded();
  await screenshot(page, "run-artifacts-tab");
  assert.deepEqual(errors, []);
  await page.close();
});
