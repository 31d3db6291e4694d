// Media panels on real synced runs: the real `runicorn-hub demo` writes sample runs whose
// baseline logs a "prediction" image every 100 steps with a caption, syncs them through the
// real agent, and serves the dashboard. Checked against the image events in the runs'
// events.jsonl on disk: the run page's panel shows each image's key, step and caption (never its
// file name) under a step slider; the compare page shows the key side by side across runs
// under one slider; /api/runs/{run}/media lists exactly the events.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, screenshot, startHub, tempDir } from "./support.mjs";

let hub;
let browser;
let tmp;
let root;
const pageErrors = [];

before(async () => {
  tmp = tempDir();
  root = path.join(tmp.dir, "root");
  hub = await startHub(["--hub-dir", path.join(tmp.dir, "hub"), "demo", "--dir", root, "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
});

/** The run with this alias from the API, once the demo's first sync has listed it. */
async function runByAlias(alias) {
  for (let i = 0; i < 600; i++) {
    const page = await fetch(`${hub.url}api/runs?limit=100`).then((r) => r.json());
    const run = page.runs.find((r) => r.alias === alias);
    if (run) return run;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no run ${alias} in the store`);
}

/** The image events of a run as written on disk (the run format's events.jsonl). */
function imageEvents(run) {
  const dir = path.join(root, "runs", run.path, run.run_id);
  return fs
    .readFileSync(path.join(dir, "events.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.includes('"image"'))
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === "image")
    .map((e) => ({ key: e.data.key, step: e.data.step, caption: e.data.caption, path: e.data.path }));
}

async function open(hash) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}${hash}`);
  return page;
}

test("the media API lists a run's image events by key with step and caption", async () => {
  const run = await runByAlias("baseline");
  const written = imageEvents(run);
  assert.equal(written.length, 4, "the demo logs 4 images in 400 steps");
  let media;
  // The run's files arrive with the sync: ask until the events are there.
  for (let i = 0; i < 300; i++) {
    media = await fetch(`${hub.url}api/runs/${run.key}/media`).then((r) => r.json());
    if (media.source === "events" && media.keys.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(media.source, "events", JSON.stringify(media));
  assert.deepEqual(
    media.keys.flatMap((k) => k.images.map((im) => ({ key: k.key, step: im.step, caption: im.caption, path: im.path }))),
    written.sort((a, b) => a.step - b.step),
  );
  for (const k of media.keys) for (const im of k.images) assert.ok(im.url.startsWith(`/api/runs/${run.key}/files/media/`), im.url);
});

test("the run page shows each key's image with its step and caption under a step slider", async () => {
  const run = await runByAlias("baseline");
  const written = imageEvents(run).sort((a, b) => a.step - b.step);
  const page = await open(`#/run/${run.key}?tab=files`);
  const panel = page.locator('.media-panel[data-key="prediction"]');
  await panel.waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => {
    const img = document.querySelector('.media-panel[data-key="prediction"] img');
    return img && img.complete && img.naturalWidth === 64;
  }, null, { timeout: 30_000 });
  // At first the last image; the slider walks back through every step.
  assert.equal(await panel.locator(".media-step").textContent(), `step ${written.at(-1).step}`);
  assert.equal(await panel.locator(".media-caption").textContent(), ` · ${written.at(-1).caption}`);
  const text = await panel.textContent();
  assert.doesNotMatch(text, /media\/|\.png/, "no internal file name in the panel");
  for (let i = 0; i < written.length; i++) {
    await panel.locator("input.media-slider").fill(String(i));
    assert.equal(await panel.locator(".media-step").textContent(), `step ${written[i].step}`);
    const src = await panel.locator("img").getAttribute("src");
    assert.ok(src.endsWith(written[i].path.split("/").pop()), `${src} shows ${written[i].path}`);
  }
  await page.waitForFunction(() => document.querySelector('.media-panel[data-key="prediction"] img')?.naturalWidth === 64, null, { timeout: 30_000 });
  await panel.scrollIntoViewIfNeeded();
  await screenshot(page, "run-media-panel");
  await page.close();
});

test("the compare page shows a key side by side across runs under one slider", async () => {
  const a = await runByAlias("baseline");
  const b = await runByAlias("lr-0.03");
  const page = await open(`#/compare?runs=${a.key},${b.key}`);
  const row = page.locator('.compare-media .media-row[data-key="prediction"]');
  await row.waitFor({ timeout: 30_000 });
  assert.equal(await row.locator(".media-cell").count(), 2);
  const stepsA = imageEvents(a).map((e) => e.step);
  const stepsB = imageEvents(b).map((e) => e.step);
  const all = [...new Set([...stepsA, ...stepsB])].sort((x, y) => x - y);
  // First the last step of all; then the first: each run shows its image at or before it.
  for (const i of [all.length - 1, 0, 1]) {
    await row.locator("input.media-slider").fill(String(i));
    const step = all[i];
    assert.equal(await row.locator("h4 .media-step").textContent(), `step ${step}`);
    const shown = await row.locator(".media-cell").evaluateAll((cells) => cells.map((c) => c.dataset.step));
    const at = (steps) => String(Math.max(...steps.filter((s) => s <= step)));
    assert.deepEqual(shown, [at(stepsA), at(stepsB)]);
  }
  await page.waitForFunction(() => [...document.querySelectorAll(".compare-media .media-cell img")].every((i) => i.complete && i.naturalWidth === 64), null, { timeout: 30_000 });
  await row.scrollIntoViewIfNeeded();
  await screenshot(page, "compare-media-side-by-side");
  await page.close();
});

test("no page errors", () => {
  assert.deepEqual(pageErrors, []);
});
