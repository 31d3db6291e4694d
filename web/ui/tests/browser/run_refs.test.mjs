// Run references in the dashboard's URLs, in a real browser: the real `runicorn-hub demo` serves
// its sample runs; a run's page opens by run id (`#/run/<run_id>`) and by remote and run id
// (`#/run/<remote>/<run_id>`), the compare view takes references, and once a second remote
// holds the same runs (`connect local:` of the demo's root under another name) a bare run id
// is ambiguous and the page offers each candidate as a link.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, screenshot, startHub, tempDir } from "./support.mjs";

let hub;
let browser;
let tmp;
let baseline; // the demo run aliased `baseline`, as the API lists it
let second; // another demo run
const pageErrors = [];

async function apiJson(target) {
  const res = await fetch(new URL(target, hub.url));
  assert.equal(res.status, 200, `GET ${target}`);
  return res.json();
}

before(async () => {
  tmp = tempDir();
  hub = await startHub(["--hub-dir", path.join(tmp.dir, "hub"), "demo", "--dir", path.join(tmp.dir, "root"), "--port", "0"]);
  browser = await launchBrowser();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { runs } = await apiJson("/api/runs?limit=100");
    baseline = runs.find((r) => r.alias === "baseline");
    second = runs.find((r) => r.alias === "seed-1");
    if (baseline && second) break;
    assert.ok(Date.now() < deadline, "the demo runs were not synced within 60 s");
    await new Promise((r) => setTimeout(r, 250));
  }
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
  assert.deepEqual(pageErrors, []);
});

async function open(hash) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}${hash}`);
  return page;
}

/** Waits for a run's page and returns its title and the run id it shows. */
async function shownRun(page) {
  await page.waitForSelector(".run-title .run-name", { timeout: 30_000 });
  return {
    name: await page.textContent(".run-title .run-name"),
    runId: await page.textContent('.fact:has(.fact-label:text("Run id")) .fact-value'),
  };
}

test("a run's page opens by its run id and by remote and run id, and keeps that reference", async () => {
  for (const hash of [
    `#/run/${baseline.run_id}`,
    `#/run/${baseline.remote}/${baseline.run_id}`,
    `#/run/${encodeURIComponent(`${baseline.remote}/${baseline.run_id}`)}`,
    `#/run/${baseline.key}`,
  ]) {
    const page = await open(hash);
    assert.deepEqual(await shownRun(page), { name: "baseline", runId: baseline.run_id }, hash);
    // The charts load through the run's key.
    await page.waitForSelector(".chart", { timeout: 30_000 });
    // A tab change keeps the reference the page was opened by.
    await page.click('button.tab[data-tab="logs"]');
    const now = await page.evaluate(() => window.location.hash);
    assert.equal(now.split("?")[0], hash.includes("%2F") ? `#/run/${baseline.remote}/${baseline.run_id}` : hash, hash);
    assert.match(now, /tab=logs/);
    await page.close();
  }
});

test("an unknown run id says so", async () => {
  const page = await open("#/run/no_such_run_0000");
  await page.waitForSelector(".run-page .state-error", { timeout: 30_000 });
  assert.match(await page.textContent(".run-page"), /no run "no_such_run_0000"/);
  await page.close();
});

test("compare takes run references", async () => {
  const page = await open(`#/compare?runs=${baseline.remote}/${baseline.run_id},${second.run_id}`);
  await page.waitForFunction(() => document.querySelectorAll(".legend-item").length === 2, null, { timeout: 30_000 });
  const keys = await page.$$eval(".legend-item", (as) => as.map((a) => Number(a.dataset.run)));
  assert.deepEqual(keys, [baseline.key, second.key]);
  await page.close();
});

test("a run id on two remotes lists both runs, and each link opens its run", async () => {
  const sync = spawnSync(
    path.join(repoRoot, "target/debug/runicorn-hub"),
    [
      "--hub-dir", path.join(tmp.dir, "hub"),
      "connect", `local:${path.join(tmp.dir, "root")}`,
      "--agent", path.join(repoRoot, "target/debug/runicorn-agent"),
      "--once", "--no-ui", "--name", "mirror",
    ],
    { timeout: 120_000, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } },
  );
  assert.equal(sync.status, 0, sync.stderr);
  const page = await open(`#/run/${baseline.run_id}`);
  await page.waitForSelector(".candidates a.candidate", { timeout: 30_000 });
  const links = await page.$$eval(".candidates a.candidate", (as) => as.map((a) => ({ text: a.textContent, href: a.getAttribute("href") })));
  const names = links.map((l) => l.text).sort();
  assert.deepEqual(names, [`${baseline.remote}/${baseline.run_id}`, `mirror/${baseline.run_id}`].sort());
  await screenshot(page, "run-ref-ambiguous");
  await page.click(`.candidates a.candidate:text("mirror/${baseline.run_id}")`);
  assert.deepEqual(await shownRun(page), { name: "baseline", runId: baseline.run_id });
  assert.equal((await page.evaluate(() => window.location.hash)).split("?")[0], `#/run/mirror/${baseline.run_id}`);
  const shownKey = await page.evaluate(() => document.title);
  assert.match(shownKey, /mirror/);
  // The compare view names the candidates too, and a choice replaces the ambiguous reference.
  await page.goto(`${hub.url}#/compare?runs=${second.key},${baseline.run_id}`);
  await page.waitForSelector(".candidates a.candidate", { timeout: 30_000 });
  const href = await page.getAttribute(`.candidates a.candidate:text("${baseline.remote}/${baseline.run_id}")`, "href");
  assert.equal(href, `#/compare?runs=${second.key},${baseline.remote}%2F${baseline.run_id}`);
  await page.close();
});
