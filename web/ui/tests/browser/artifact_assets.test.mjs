// Artifacts of the demo and upstream assets in Chromium.
// - The real `runicorn-hub demo`: its Artifacts page lists the sample dataset and model, with the
//   bytes the server holds after chunk-level dedup and the saving, per artifact and overall.
// - A root written by upstream runicorn 0.7.2 with every asset call (the committed fixture
//   tests/fixtures/upstream-0.7.2-assets), synced over a real OpenSSH sshd and served by
//   `runicorn-hub ui`: the run's Artifacts tab lists its assets, and each saved blob's Download
//   link gives bytes whose SHA-256 is the asset's; when the server's assets.json changes, the
//   open tab shows it without a reload (the ui's live follow brings it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, runHub, screenshot, startHub, startSshd, tempDir } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");
const FIXTURE = path.join(repoRoot, "tests/fixtures/upstream-0.7.2-assets");
const RUN = "20261205_025340_694eef";

let tmp;
let sshd;
let browser;
let demo;
let hub;
let root;

before(async () => {
  tmp = tempDir();
  browser = await launchBrowser();
  demo = await startHub(["--hub-dir", path.join(tmp.dir, "demo-hub"), "demo", "--dir", path.join(tmp.dir, "demo-root"), "--port", "0"]);
  sshd = await startSshd();
  // The hub's SSH client reads ~/.ssh of this HOME (its key, known_hosts).
  process.env.HOME = sshd.home;
  root = path.join(tmp.dir, "root");
  fs.mkdirSync(root);
  const copied = spawnSync("cp", ["-a", `${FIXTURE}/.`, root]);
  assert.equal(copied.status, 0, String(copied.stderr));
  const hubDir = path.join(tmp.dir, "hub");
  runHub(["--hub-dir", hubDir, "connect", sshd.spec, "--name", "gpu", "--root", root, "--agent", AGENT, "--accept-new-host-key", "--once", "--no-ui", "--prefetch", "none"]);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--port", "0"]);
});

after(async () => {
  await browser?.close();
  await demo?.stop();
  await hub?.stop();
  sshd?.cleanup();
  tmp?.cleanup();
});

/** Bytes in a figure such as "8.1 MiB" (the page's formatBytes). */
function bytesOf(text) {
  const m = /([\d.,]+)\s*(B|KiB|MiB|GiB|kB|MB|GB)/.exec(text);
  assert.ok(m, `no size in ${JSON.stringify(text)}`);
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2]];
  return Number(m[1].replace(/,/g, "")) * unit;
}

test("the demo's Artifacts page shows its model and dataset with the bytes chunk-level dedup saves", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${demo.url}#/artifacts`);
  await page.waitForSelector('tr.artifact-row[data-artifact="demo/model/resnet50"]', { timeout: 60_000 });
  await page.waitForSelector('tr.artifact-row[data-artifact="demo/dataset/cifar10-sample"]');
  const summary = await page.locator(".artifacts-summary").textContent();
  assert.match(summary, /2 artifacts · 4 versions/);
  assert.match(summary, /on the server \(chunk-level dedup, per artifact\)/);
  const row = page.locator('tr.artifact-row[data-artifact="demo/model/resnet50"]');
  const size = bytesOf(await row.locator("td").nth(4).textContent());
  const stored = bytesOf(await row.locator("td.stored").textContent());
  const saved = await row.locator("td.saved").textContent();
  assert.ok(size >= 14.5 * 1024 ** 2, `three 5 MiB checkpoints: ${size}`);
  assert.ok(stored < size / 1.5, `the server holds ${stored} of ${size}`);
  const pct = Number(/\((\d+) %\)/.exec(saved)?.[1]);
  assert.ok(pct >= 30, `saved ${saved}`);
  await screenshot(page, "artifacts-demo-bytes-saved");

  // The model's versions: best on v2, latest on v3, each produced by a demo run.
  await row.locator("a.artifact-link").click();
  await page.waitForSelector('tr.version-row[data-version="3"]', { timeout: 30_000 });
  assert.match(await page.locator(".artifact-header .dedup-figures").textContent(), /on the server \(chunk-level dedup\)/);
  assert.match(await page.textContent('tr.version-row[data-version="2"]'), /best/);
  assert.match(await page.textContent('tr.version-row[data-version="3"]'), /latest/);
  assert.match(await page.textContent('tr.version-row[data-version="1"] .produced-by'), /\d{8}_\d{6}/);
  assert.match(await page.textContent('tr.artifact-file[data-path="weights.bin"]'), /chunked/);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a run written by upstream 0.7.2 shows its assets with working download links, live", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/run/${RUN}?tab=artifacts`);
  await page.waitForSelector(".run-assets table.asset-files", { timeout: 60_000 });
  const names = await page.locator(".run-assets .asset-entry").evaluateAll((rows) => rows.map((r) => `${r.dataset.category}/${r.dataset.name}`));
  for (const want of ["code/code_snapshot.zip", "dataset/cifar", "dataset/labels", "dataset/unsaved", "pretrained/backbone", "pretrained/hub-model", "output/best.pt", "output/final.pt"]) {
    assert.ok(names.includes(want), `${want} in ${JSON.stringify(names)}`);
  }
  // Every Download link: the bytes the server holds, of the asset's SHA-256.
  const links = await page.locator(".run-assets a.asset-download").evaluateAll((as) => as.map((a) => ({ href: a.getAttribute("href"), sha: a.dataset.sha256 })));
  assert.equal(links.length, 4, JSON.stringify(links));
  for (const { href, sha } of links) {
    const r = await page.request.get(new URL(href, hub.url).toString());
    assert.equal(r.status(), 200, `${href}: ${await r.text()}`);
    const body = await r.body();
    assert.equal(crypto.createHash("sha256").update(body).digest("hex"), sha, href);
  }
  // And a click on one downloads it in the browser.
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator('tr.asset-entry[data-name="labels"] a.asset-download').click()]);
  const saved = await download.path();
  const labelsSha = links.find((l) => l.href.includes("1f04397277afc615"))?.sha;
  assert.equal(crypto.createHash("sha256").update(fs.readFileSync(saved)).digest("hex"), labelsSha);
  await page.locator(".run-assets").scrollIntoViewIfNeeded();
  await screenshot(page, "run-upstream-assets");

  // The server's assets.json gains a dataset: the open tab shows it once the live sync brings it.
  const assetsFile = path.join(root, "runs/assets/compat", RUN, "assets.json");
  const assets = JSON.parse(fs.readFileSync(assetsFile, "utf8"));
  assets.datasets.push({ name: "added-later", context: "eval", uri: "/elsewhere/added", saved: false });
  fs.writeFileSync(`${assetsFile}.tmp`, JSON.stringify(assets));
  fs.renameSync(`${assetsFile}.tmp`, assetsFile);
  await page.waitForSelector('.run-assets tr.asset-entry[data-name="added-later"]', { timeout: 60_000 });
  assert.deepEqual(errors, []);
  await page.close();
});
