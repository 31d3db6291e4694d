// The dashboard in a real browser: the real `runicorn-hub demo` (six sample runs, one of them
// training live) serves the embedded UI; headless Chromium drives it.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { demoArgs, hubAndBrowser, screenshot } from "./support.mjs";

const ALIASES = ["baseline", "lr-0.03", "lr-0.3", "warmup-1k", "seed-1", "live", "wrapped-command"];
const PATHS = ["cv/resnet50", "nlp/bert-base", "rl/ppo", "cv/vit-small", "demo/agent-run"];

let hub;
let browser;
let tmp;
const pageErrors = [];

hubAndBrowser(demoArgs, (f) => ({ hub, browser, tmp } = f));

async function open(hash) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("dialog", (d) => {
    pageErrors.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(`${hub.url}${hash}`);
  return page;
}

/** Waits until the runs table shows all six demo runs (the first sync may still be going). */
async function waitForRuns(page) {
  await page.waitForFunction(
    (n) => document.querySelectorAll("table.data tbody tr.run-row").length >= n,
    ALIASES.length,
    { timeout: 60_000 },
  );
}

async function rowIdByAlias(page, alias) {
  return page.evaluate((a) => {
    for (const link of document.querySelectorAll("tr.run-row a.run-link")) {
      if (link.textContent === a) return Number(link.closest("tr").dataset.id);
    }
    return null;
  }, alias);
}

test("the runs table lists the demo runs", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const names = await page.$$eval("tr.run-row a.run-link", (as) => as.map((a) => a.textContent));
  for (const a of ALIASES) assert.ok(names.includes(a), `alias ${a} in ${names}`);
  const paths = await page.$$eval("tr.run-row td[data-col=path]", (tds) => tds.map((t) => t.textContent));
  for (const p of PATHS) assert.ok(paths.includes(p), `path ${p} in ${paths}`);
  const statuses = await page.$$eval("tr.run-row .badge", (bs) => bs.map((b) => b.dataset.status));
  assert.ok(statuses.some((s) => s === "failed" || s === "crashed"), `a failed run in ${statuses}`);
  const liveRow = page.locator("tr.run-row", { has: page.locator("a.run-link", { hasText: /^live$/ }) });
  assert.equal(await liveRow.locator(".badge").getAttribute("data-status"), "running");
  // the path tree counts the runs
  const treeAll = await page.textContent(".tree-all .count");
  assert.equal(Number(treeAll), ALIASES.length);
  await page.click('.tree-label[data-path="cv"]');
  await page.waitForFunction(() => document.querySelectorAll("tr.run-row").length === 4);
  await page.click(".tree-all");
  await waitForRuns(page);
  await screenshot(page, "runs-table-demo-runs");
  await page.close();
});

test("a run opens and its chart has points", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "baseline");
  assert.ok(id, "baseline row");
  await page.click(`tr.run-row[data-id="${id}"] a.run-link`);
  await page.waitForSelector(".chart-grid[data-rendered='1'] .chart[data-rendered='1']", { timeout: 30_000 });
  const charts = await page.$$eval(".chart", (cs) => cs.map((c) => ({ key: c.dataset.key, points: Number(c.dataset.points) })));
  const loss = charts.find((c) => c.key === "train_loss");
  assert.ok(loss, `train_loss chart in ${JSON.stringify(charts)}`);
  assert.equal(loss.points, 400);
  // the canvas has drawn pixels of more than one colour
  const distinct = await page.$eval('.chart[data-key="train_loss"] canvas', (c) => {
    const ctx = c.getContext("2d");
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    const seen = new Set();
    for (let i = 0; i < data.length; i += 16) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2] | (data[i + 3] << 24));
    return seen.size;
  });
  assert.ok(distinct > 3, `canvas colours: ${distinct}`);
  await screenshot(page, "run-detail-charts-baseline");
  await page.close();
});

test("a run's images are fetched on demand and shown", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "baseline");
  assert.ok(id, "baseline row");
  await page.goto(`${hub.url}#/run/${id}?tab=files`);
  // The demo's baseline run logs a 64×64 PNG every 100 steps; the hub reads them from the
  // demo's root the first time the page asks.
  await page.waitForFunction(
    () => {
      // One media panel per key (the demo's "prediction", 4 images), showing one at a time.
      const imgs = [...document.querySelectorAll(".media-panel img")];
      const head = document.querySelector('.media-panel[data-key="prediction"] h4')?.textContent ?? "";
      return /4 images/.test(head) && imgs.length >= 1 && imgs.every((i) => i.complete && i.naturalWidth === 64);
    },
    null,
    { timeout: 30_000 },
  );
  await screenshot(page, "run-detail-images-baseline");
  await page.close();
});

test("the Files tab lists the run's files as a tree, opens a text file and offers a download", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "baseline");
  await page.goto(`${hub.url}#/run/${id}?tab=files`);
  // The tree comes from /api/runs/{run}/files: the run's own files and its media folder.
  await page.waitForSelector('.file-tree .file-row[data-path="logs.txt"]', { timeout: 30_000 });
  const count = await page.textContent(".file-tree .file-count");
  assert.match(count, /^\d+ files, /);
  const media = page.locator(".file-tree details.file-folder").first();
  if (!(await media.evaluate((d) => d.open))) await media.locator("summary").click();
  const png = page.locator('.file-tree .file-row[data-path$=".png"]').first();
  await png.waitFor({ timeout: 10_000 });
  const pngPath = await png.getAttribute("data-path");
  const link = png.locator("a.file-download");
  assert.equal(await link.getAttribute("download"), pngPath.split("/").pop());
  const href = await link.getAttribute("href");
  assert.ok(href.startsWith(`/api/runs/${id}/files/`), href);
  const download = await page.evaluate(async (u) => {
    const r = await fetch(u);
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get("content-type"), head: [...b.slice(0, 4)] };
  }, href);
  assert.deepEqual(download, { status: 200, type: "image/png", head: [0x89, 0x50, 0x4e, 0x47] });
  // logs.txt opens inline, as text, with the lines the run logged.
  await page.click('.file-tree .file-row[data-path="logs.txt"] button.file-open');
  await page.waitForFunction(() => /step 10: loss/.test(document.querySelector(".file-view pre.file-text")?.textContent ?? ""), null, {
    timeout: 30_000,
  });
  assert.equal(await page.textContent(".file-view .file-view-title"), "logs.txt");
  // Opened, it is cached: the mark says so once the tab is drawn again.
  await page.reload();
  await page.waitForSelector('.file-tree .file-row[data-path="logs.txt"] .file-cached.is-cached', { timeout: 30_000 });
  // The images are shown as before.
  assert.ok((await page.locator(".media-panel img").count()) >= 1);
  await screenshot(page, "run-detail-files-tree");
  await page.close();
});

test("drag-to-zoom fetches the zoomed range; a double click resets it", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "baseline");
  await page.goto(`${hub.url}#/run/${id}?tab=charts`);
  const chart = '.chart[data-key="train_loss"]';
  await page.waitForSelector(`${chart}[data-rendered='1'][data-points='400']`, { timeout: 30_000 });
  const zoomed = page.waitForRequest((r) => /\/metrics\?.*from=.*to=/.test(r.url()), { timeout: 15_000 });
  const box = await page.locator(`${chart} .u-over`).boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.25, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.4, y, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 5 });
  await page.mouse.up();
  const request = new URL((await zoomed).url());
  const from = Number(request.searchParams.get("from"));
  const to = Number(request.searchParams.get("to"));
  assert.ok(from > 50 && to < 300 && from < to, `zoomed to ${from}..${to}`);
  // The reloaded chart holds only the steps of the range (about a quarter of 400).
  await page.waitForFunction(
    (sel) => {
      const n = Number(document.querySelector(sel)?.dataset.points ?? 0);
      return n > 0 && n < 200;
    },
    chart,
    { timeout: 15_000 },
  );
  await screenshot(page, "run-detail-zoomed-train-loss");
  await page.dblclick(`${chart} .u-over`);
  await page.waitForSelector(`${chart}[data-points='400']`, { timeout: 15_000 });
  await page.close();
});

test("log search highlights matches", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "baseline");
  await page.goto(`${hub.url}#/run/${id}?tab=logs`);
  await page.waitForFunction(() => Number(document.querySelector(".log-body")?.dataset.lines ?? 0) > 10, null, { timeout: 30_000 });
  await page.fill(".log-search", "step 100:");
  await page.waitForFunction(() => document.querySelectorAll(".log-body mark").length === 1, null, { timeout: 10_000 });
  assert.equal(await page.$eval(".log-body mark", (m) => m.textContent), "step 100:");
  // The Download link gives the stored log's bytes.
  const href = await page.$eval(".log-download", (a) => a.getAttribute("href"));
  const raw = await page.evaluate(async (u) => {
    const r = await fetch(u);
    return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
  }, href);
  assert.equal(raw.status, 200);
  assert.equal(raw.type, "application/octet-stream");
  assert.match(raw.text, /step 100:/);
  await page.close();
});

test("two runs selected: compare shows both and the lr diff", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  for (const a of ["baseline", "lr-0.03"]) {
    const id = await rowIdByAlias(page, a);
    await page.check(`tr.run-row[data-id="${id}"] td.col-select input`);
  }
  await page.click(".compare-btn");
  await page.waitForSelector(".chart-grid[data-rendered='1']", { timeout: 30_000 });
  const legend = await page.$$eval(".legend-name", (ls) => ls.map((l) => l.textContent));
  assert.deepEqual([...legend].sort(), ["baseline", "lr-0.03"]);
  const lrRow = page.locator('table.diff tr[data-key="lr"]');
  await lrRow.waitFor();
  assert.match((await lrRow.getAttribute("class")) ?? "", /differs/);
  const cells = await lrRow.locator("td").allTextContents();
  assert.deepEqual(cells.slice(1).sort(), ["0.03", "0.1"]);
  // show everything: a shared key (batch_size) appears
  await page.uncheck(".only-diff");
  await page.locator('table.diff tr[data-key="batch_size"]').waitFor();
  await screenshot(page, "compare-two-runs-legend-config-diff");
  await page.close();
});

test("the live run's log follows new lines", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "live");
  await page.goto(`${hub.url}#/run/${id}?tab=logs`);
  await page.waitForFunction(() => Number(document.querySelector(".log-body")?.dataset.lines ?? 0) > 0, null, { timeout: 30_000 });
  const before = await page.$eval(".log-body", (b) => Number(b.dataset.lines));
  assert.ok(await page.isChecked(".log-follow"), "follow is on");
  // The live run writes a line every step or so: wait for new ones over the live stream, and
  // for enough of them to overflow the (small) view, so following means scrolling.
  await page.setViewportSize({ width: 1000, height: 520 });
  await page.waitForFunction(
    (n) => {
      const b = document.querySelector(".log-body");
      return Number(b.dataset.lines) > n && b.scrollHeight > b.clientHeight + 40;
    },
    before,
    { timeout: 60_000 },
  );
  await page.waitForTimeout(1500); // a few more lines arrive while we look
  const state = await page.$eval(".log-body", (b) => ({
    lines: Number(b.dataset.lines),
    gap: b.scrollHeight - b.scrollTop - b.clientHeight,
    last: b.lastElementChild?.textContent ?? "",
  }));
  assert.ok(state.lines > before);
  assert.ok(state.gap < 4, `scrolled to the bottom (gap ${state.gap})`);
  await screenshot(page, "logs-live-run-following");
  await page.close();
});

test("a hostile alias shows as text and runs nothing", async () => {
  const hostile = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">';
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "seed-1");
  await page.goto(`${hub.url}#/run/${id}`);
  await page.click(".alias-edit");
  await page.fill(".alias-input", hostile);
  await page.press(".alias-input", "Enter");
  await page.waitForFunction((t) => document.querySelector(".run-name")?.textContent === t, hostile);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.$$eval(".run-header img, .run-header script", (els) => els.length), 0);
  await screenshot(page, "xss-alias-run-detail");
  await page.goto(`${hub.url}#/runs`);
  await page.waitForFunction((t) => [...document.querySelectorAll("a.run-link")].some((a) => a.textContent === t), hostile);
  assert.equal(await page.$$eval("table.data img, table.data script", (els) => els.length), 0);
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await screenshot(page, "xss-alias-runs-table");
  await page.close();
});

test("the dark mode toggle changes the theme", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  const first = await theme();
  const firstBg = await bg();
  await page.click(".theme-toggle");
  const second = await theme();
  assert.notEqual(second, first);
  assert.notEqual(await bg(), firstBg);
  await screenshot(page, `theme-${second}`);
  // the choice survives a reload
  await page.reload();
  await waitForRuns(page);
  assert.equal(await theme(), second);
  await page.click(".theme-toggle");
  assert.equal(await theme(), first);
  await screenshot(page, `theme-${first}`);
  await page.close();
});

test("recycle bin: move a run there and restore it; the remotes page", async () => {
  const page = await open("#/runs");
  await waitForRuns(page);
  const id = await rowIdByAlias(page, "warmup-1k");
  await page.check(`tr.run-row[data-id="${id}"] td.col-select input`);
  await page.click(".trash-btn");
  await page.waitForSelector(`tr.run-row[data-id="${id}"]`, { state: "detached" });
  await page.click('a.nav-link[data-page="trash"]');
  await page.waitForSelector(`tr.run-row[data-id="${id}"]`);
  await screenshot(page, "recycle-bin-one-run");
  await page.check(`tr.run-row[data-id="${id}"] td.col-select input`);
  await page.click(".trash-btn");
  await page.waitForSelector(".state-empty");
  await page.click('a.nav-link[data-page="runs"]');
  await page.waitForSelector(`tr.run-row[data-id="${id}"]`);
  await page.click('a.nav-link[data-page="remotes"]');
  await page.waitForSelector('tr[data-remote="demo"]');
  assert.match(await page.textContent('tr[data-remote="demo"]'), /connected/);
  await screenshot(page, "remotes-page");
  await page.close();
});

test("no script errors on any page", () => {
  assert.deepEqual(pageErrors, []);
});
