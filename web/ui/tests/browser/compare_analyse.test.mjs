// The compare page as an analysis tool, on real synced runs: eight runs written in the run format
// (a 2 optimizers × 4 seeds sweep, metrics loss and acc over 300 steps) are synced by the real
// `runicorn-hub connect local:ROOT --once` (the real agent), and `runicorn-hub ui --offline`
// serves the store to headless Chromium. Checked against the numbers written: the summary table
// (last, min, max, best), the values at the cursor on every chart, grouping (group mean, min–max
// and ±std bands, group rows) against a direct computation of mean, std, min and max, brushing
// in parallel coordinates filtering charts and table, the view in the URL and remembered by the
// browser, and the compare and run "Export CSV" read back equal to the API's numbers.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, screenshot, startHub, tempDir } from "./support.mjs";

const STEPS = 300;
const OPTIMIZERS = ["sgd", "adam"];
const SEEDS = [0, 1, 2, 3];

let hub;
let browser;
let tmp;
/** run_id → { optimizer, seed, loss: number[], acc: number[] } (index = step - 1). */
const written = new Map();
/** run_id → the hub's key. */
const keys = new Map();
const pageErrors = [];

/** A deterministic curve with noise, so runs differ and no two values tie. */
function curves(o, seed) {
  const loss = [];
  const acc = [];
  let x = 12345 + seed * 7919 + o * 104729;
  const noise = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.05;
  for (let s = 1; s <= STEPS; s++) {
    loss.push(Number(((o === 0 ? 2.0 : 1.5) * Math.exp(-s / (80 + seed * 10)) + 0.1 + noise()).toFixed(6)));
    acc.push(Number(((o === 0 ? 0.85 : 0.9) * (1 - Math.exp(-s / (60 + seed * 5))) + noise()).toFixed(6)));
  }
  return { loss, acc };
}

function writeRuns(root) {
  OPTIMIZERS.forEach((optimizer, o) =>
    SEEDS.forEach((seed) => {
      const id = `20261201_1200${o}${seed}_a${o}${seed}a${o}${seed}`.slice(0, 22);
      const dir = path.join(root, "runs", "sweep", "cifar", id);
      fs.mkdirSync(dir, { recursive: true });
      const t0 = 1795000000 + o * 1000 + seed * 100;
      fs.writeFileSync(path.join(dir, "meta.json"), JSON.stringify({ id, path: "sweep/cifar", alias: `${optimizer}-s${seed}`, created_at: t0, hostname: "gpu1" }));
      fs.writeFileSync(path.join(dir, "status.json"), JSON.stringify({ status: "finished", started_at: t0, ended_at: t0 + STEPS }));
      fs.writeFileSync(path.join(dir, "assets.json"), JSON.stringify({ config: { args: { optimizer, seed, lr: optimizer === "sgd" ? 0.1 : 0.001 }, extra: {}, config_files: [] } }));
      const c = curves(o, seed);
      const lines = c.loss.map((l, i) => JSON.stringify({ ts: t0 + i + 1, type: "metrics", data: { loss: l, acc: c.acc[i], global_step: i + 1, time: t0 + i + 1 } }));
      fs.writeFileSync(path.join(dir, "events.jsonl"), lines.join("\n") + "\n");
      written.set(id, { optimizer, seed, ...c });
    }),
  );
}

before(async () => {
  tmp = tempDir();
  const exe = process.env.RUNICORN_HUB_BIN ?? path.join(repoRoot, "target/debug/runicorn-hub");
  const agent = process.env.RUNICORN_AGENT_BIN ?? path.join(path.dirname(exe), "runicorn-agent");
  const hubDir = path.join(tmp.dir, "hub");
  const root = path.join(tmp.dir, "root");
  writeRuns(root);
  const synced = spawnSync(exe, ["--hub-dir", hubDir, "connect", `local:${root}`, "--once", "--no-ui", "--agent", agent, "--name", "gpu1"], {
    env: { ...process.env, NO_COLOR: "1", HOME: tmp.dir },
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(synced.status, 0, `connect --once failed:\n${synced.stderr}`);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--offline", "--port", "0"]);
  browser = await launchBrowser();
  const page = await fetch(`${hub.url}api/runs?limit=100`).then((r) => r.json());
  for (const r of page.runs) keys.set(r.run_id, r.key);
  assert.equal(keys.size, written.size, "every written run is in the store");
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  tmp?.cleanup();
});

const ids = () => [...written.keys()];
const compareHash = (extra = "") => `#/compare?runs=${ids().map((id) => keys.get(id)).join(",")}${extra}`;

async function open(hash) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}${hash}`);
  await page.waitForSelector('.chart-grid[data-rendered="1"] figure.chart', { timeout: 60_000 });
  await page.waitForSelector(".summary-table tbody tr");
  return page;
}

/** Mean, sample std, min, max computed directly (two passes). */
function direct(values) {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, mean, std, min: Math.min(...values), max: Math.max(...values) };
}

const close = (a, b, what) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test("the summary table shows last, min and max of each metric, the best in bold", async () => {
  const page = await open(compareHash("&group=&smooth=0"));
  const cells = await page.$$eval(".summary-table td[data-run]", (tds) => tds.map((td) => ({ run: Number(td.dataset.run), key: td.dataset.key, stat: td.dataset.stat, value: td.dataset.value, best: td.classList.contains("best") })));
  assert.equal(cells.length, written.size * 2 * 3);
  const byKey = new Map([...keys].map(([id, k]) => [k, id]));
  for (const c of cells) {
    const series = written.get(byKey.get(c.run))[c.key];
    const want = c.stat === "last" ? series[series.length - 1] : c.stat === "min" ? Math.min(...series) : Math.max(...series);
    assert.equal(Number(c.value), want, `${c.key} ${c.stat} of run ${c.run}`);
  }
  // Best: lowest last loss, highest last acc (the rule is shown under the table).
  const lastOf = (key) => ids().map((id) => ({ id, v: written.get(id)[key].at(-1) }));
  const bestLoss = lastOf("loss").reduce((a, b) => (b.v < a.v ? b : a));
  const bestAcc = lastOf("acc").reduce((a, b) => (b.v > a.v ? b : a));
  const bestCells = cells.filter((c) => c.best && c.stat === "last");
  assert.deepEqual(bestCells.map((c) => `${c.key}:${byKey.get(c.run)}`).sort(), [`acc:${bestAcc.id}`, `loss:${bestLoss.id}`].sort());
  assert.match(await page.textContent(".best-rule"), /lowest \(↓\) for keys naming loss/);
  await page.close();
});

test("every chart shows every run's value at the cursor", async () => {
  // Smoothed lines drawn: the box still gives each stored value (the smoothed one beside it).
  const page = await open(compareHash("&group=&smooth=0.6"));
  const chart = page.locator('figure.chart[data-key="loss"] .u-over');
  const box = await chart.boundingBox();
  await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2);
  await page.waitForFunction(() => [...document.querySelectorAll(".chart-tip")].filter((t) => !t.hidden).length === 2);
  const tips = await page.$$eval(".chart-tip", (ts) =>
    ts.map((t) => ({ key: t.closest("figure").dataset.key, x: Number(t.dataset.x), rows: [...t.querySelectorAll(".tip-row")].map((r) => ({ label: r.dataset.label, value: r.dataset.value })) })),
  );
  assert.equal(tips[0].x, tips[1].x, "both charts show the same step");
  const step = tips[0].x;
  assert.ok(Number.isInteger(step) && step >= 1 && step <= STEPS, `step ${step}`);
  for (const tip of tips) {
    assert.equal(tip.rows.length, written.size);
    for (const row of tip.rows) {
      const [optimizer, seed] = row.label.split("-s");
      const run = [...written.values()].find((w) => w.optimizer === optimizer && w.seed === Number(seed));
      assert.equal(Number(row.value), run[tip.key][step - 1], `${tip.key} of ${row.label} at step ${step}`);
    }
  }
  await screenshot(page, "compare-cursor-values");
  await page.close();
});

test("grouping by a config key draws each group's mean with min–max or ±std bands, checked directly", async () => {
  const page = await open(compareHash("&smooth=0"));
  await page.selectOption("select.group-by", "config.optimizer");
  await page.waitForSelector('.chart-grid[data-groups="2"][data-rendered="1"]');
  await page.waitForSelector(".summary-table tr.group-row");
  assert.match(page.url(), /group=config\.optimizer/);
  const check = async (band) => {
    // Per chart: uPlot columns are [x, lo, hi, mean] per group (no smoothing).
    const data = await page.evaluate(() =>
      window.__runicornCharts.map((u) => ({ key: u.root.closest("figure").dataset.key, labels: u.series.map((s) => s.label), data: u.data.map((c) => Array.from(c)) })),
    );
    for (const chart of data) {
      OPTIMIZERS.forEach((opt, g) => {
        const label = `${opt} (${SEEDS.length})`;
        const at = chart.labels.indexOf(label);
        assert.ok(at > 0, `series ${label} in ${chart.labels}`);
        const [lo, hi, mean] = [chart.data[at - 2], chart.data[at - 1], chart.data[at]];
        const members = [...written.values()].filter((w) => w.optimizer === opt);
        for (const i of [0, 57, 149, STEPS - 1]) {
          const step = chart.data[0][i];
          const d = direct(members.map((m) => m[chart.key][step - 1]));
          close(mean[i], d.mean, `${chart.key} ${opt} mean at ${step}`);
          if (band === "minmax") {
            assert.equal(lo[i], d.min);
            assert.equal(hi[i], d.max);
          } else {
            close(lo[i], d.mean - d.std, `${chart.key} ${opt} mean-std at ${step}`);
            close(hi[i], d.mean + d.std, `${chart.key} ${opt} mean+std at ${step}`);
          }
        }
        void g;
      });
    }
  };
  await check("minmax");
  // Group rows: mean ± std of the members' last values, smallest min, largest max.
  for (const opt of OPTIMIZERS) {
    const members = [...written.values()].filter((w) => w.optimizer === opt);
    for (const key of ["loss", "acc"]) {
      const cell = (stat) => page.getAttribute(`.summary-table tr.group-row[data-group="${opt}"] td[data-key="${key}"][data-stat="${stat}"]`, "data-value");
      close(Number(await cell("last")), direct(members.map((m) => m[key].at(-1))).mean, `${opt} ${key} last mean`);
      assert.equal(Number(await cell("min")), Math.min(...members.flatMap((m) => m[key])));
      assert.equal(Number(await cell("max")), Math.max(...members.flatMap((m) => m[key])));
    }
  }
  await page.selectOption("select.band-kind", "std");
  await page.waitForSelector('.chart-grid[data-rendered="1"]');
  await page.waitForFunction(() => /band=std/.test(location.hash));
  await check("std");
  await screenshot(page, "compare-grouped-bands-summary");
  await page.close();
});

test("the view sticks: the URL reproduces it and the browser remembers it", async () => {
  const page = await open(compareHash("&group=config.optimizer&band=std&smooth=0.2&axes=config.seed,metric.acc"));
  assert.equal(await page.inputValue("select.group-by"), "config.optimizer");
  assert.equal(await page.inputValue("select.band-kind"), "std");
  assert.equal(await page.inputValue("input.smoothing"), "0.2");
  assert.deepEqual(await page.$$eval(".parcoords .pc-axis", (as) => as.map((a) => a.dataset.key)), ["config.seed", "metric.acc"]);
  // Same browser, a URL without view settings: the last view comes back.
  await page.close();
  const again = await open(compareHash());
  assert.equal(await again.inputValue("select.group-by"), "config.optimizer");
  assert.deepEqual(await again.$$eval(".parcoords .pc-axis", (as) => as.map((a) => a.dataset.key)), ["config.seed", "metric.acc"]);
  await again.close();
});

test("brushing an axis of the parallel coordinates filters the charts and the table", async () => {
  const page = await open(compareHash("&group=&smooth=0&axes=config.optimizer,config.lr,config.seed,metric.loss,metric.acc"));
  const axes = await page.$$eval(".parcoords .pc-axis", (as) => as.map((a) => a.dataset.key));
  assert.deepEqual(axes, ["config.optimizer", "config.lr", "config.seed", "metric.loss", "metric.acc"]);
  await page.locator(".parcoords").scrollIntoViewIfNeeded();
  const canvas = await page.locator(".parcoords canvas.pc-front").boundingBox();
  const label = await page.locator('.parcoords .pc-axis[data-key="metric.acc"]').boundingBox();
  const x = label.x + label.width / 2;
  // Drag from the top of the acc axis to its middle: keeps the runs with the higher last acc.
  await page.mouse.move(x, canvas.y + 20);
  await page.mouse.down();
  await page.mouse.move(x, canvas.y + canvas.height * 0.45, { steps: 5 });
  await page.mouse.up();
  const selected = Number(await page.getAttribute(".parcoords", "data-selected"));
  assert.ok(selected > 0 && selected < written.size, `brushed ${selected} runs`);
  await page.waitForFunction((n) => document.querySelectorAll(".summary-table tbody tr[data-run]").length === n, selected);
  await page.waitForFunction((n) => (window.__runicornCharts ?? []).every((u) => u.series.length - 1 === n), selected);
  const kept = new Set(await page.$$eval(".summary-table tbody tr[data-run]", (trs) => trs.map((t) => Number(t.dataset.run))));
  const byKey = new Map([...keys].map(([id, k]) => [k, id]));
  const lastAcc = (k) => written.get(byKey.get(k)).acc.at(-1);
  const keptAcc = [...kept].map(lastAcc);
  const droppedAcc = [...keys.values()].filter((k) => !kept.has(k)).map(lastAcc);
  assert.ok(Math.min(...keptAcc) > Math.max(...droppedAcc), `kept ${keptAcc} above dropped ${droppedAcc}`);
  assert.equal(await page.locator(".legend-item.filtered-out").count(), written.size - selected);
  await screenshot(page, "compare-parcoords-brushed");
  // A click on the axis clears its brush.
  await page.mouse.click(x, canvas.y + canvas.height * 0.8);
  await page.waitForFunction((n) => document.querySelectorAll(".summary-table tbody tr[data-run]").length === n, written.size);
  await page.close();
});

/** Clicks `button` and returns the downloaded CSV as rows. */
async function download(page, button) {
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
  const file = await dl.path();
  const text = fs.readFileSync(file, "utf8");
  assert.ok(text.endsWith("\r\n"));
  return text.trimEnd().split("\r\n").map((l) => l.split(","));
}

test("Export CSV of a comparison and of a run reads back equal to the API's numbers", async () => {
  const page = await open(compareHash("&group="));
  const rows = await download(page, ".compare-page button.export-csv");
  assert.deepEqual(rows[0], ["run", "key", "step", "value"]);
  assert.equal(rows.length - 1, written.size * 2 * STEPS);
  const api = new Map();
  for (const [id, k] of keys) {
    const m = await fetch(`${hub.url}api/runs/${k}/metrics?raw=1`).then((r) => r.json());
    for (const s of m.series) s.steps.forEach((step, j) => api.set(`${id} ${s.key} ${step}`, s.values[j]));
  }
  for (const [run, key, step, value] of rows.slice(1)) {
    const want = api.get(`${run} ${key} ${step}`);
    assert.equal(Number(value), want, `${run} ${key} ${step}`);
    assert.equal(value, String(want));
  }
  await page.close();
  const id = ids()[0];
  const runPage = await browser.context.newPage();
  await runPage.goto(`${hub.url}#/run/${keys.get(id)}`);
  await runPage.waitForSelector('.tab-charts .chart-grid[data-rendered="1"] figure.chart', { timeout: 60_000 });
  const runRows = await download(runPage, ".tab-charts button.export-csv");
  assert.equal(runRows.length - 1, 2 * STEPS);
  for (const [run, key, step, value] of runRows.slice(1)) {
    assert.equal(run, id);
    assert.equal(Number(value), written.get(id)[key][Number(step) - 1]);
  }
  await runPage.close();
});

test("no page errors", () => {
  assert.deepEqual(pageErrors, []);
});
