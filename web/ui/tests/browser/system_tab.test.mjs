// The run page's System tab on real synced runs: the real `runicorn-hub demo --once` writes the
// sample runs and syncs them; a `system.jsonl` in the agent's format (two GPUs, six minutes of
// samples) is then written into the baseline run's directory, a real `runicorn-hub sync` lists
// it and prefetches it (the default `media` policy takes it), and `runicorn-hub ui --offline`
// serves the store: the tab draws the Process and both GPU groups from the cache alone, and
// another run shows the empty state. Screenshots in light and dark. Last, a live demo: the tab
// follows the real samples `runicorn-agent run` records of the command the demo wraps.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hubAndBrowser, runHub, screenshot, startHub, tempDir } from "./support.mjs";

let hub;
let browser;
let tmp;
const SAMPLES = 360;

/** The directory of the run with this alias under a root (its meta.json names it). */
function runDir(root, alias) {
  for (const entry of fs.readdirSync(root, { recursive: true })) {
    if (path.basename(entry) !== "meta.json") continue;
    const meta = JSON.parse(fs.readFileSync(path.join(root, entry), "utf8"));
    if (meta.alias === alias) return { dir: path.join(root, path.dirname(entry)), meta };
  }
  throw new Error(`no run ${alias} under ${root}`);
}

/** A telemetry file as the agent writes it: one sample every 10 s, GPUs 0 and 1. */
function telemetry(t0) {
  let text = "";
  for (let i = 0; i < SAMPLES; i++) {
    const x = i / 20;
    const data = {
      "sys/cpu_percent": 180 + 60 * Math.sin(x),
      "sys/rss_mib": 2000 + i * 3.5,
      "sys/io_read_mib": i * 12.5,
      "sys/io_write_mib": i * 2.1,
      "sys/procs": 3,
      "sys/threads": 41,
    };
    for (const g of [0, 1]) {
      data[`sys/gpu.${g}/util_percent`] = Math.round(85 + 10 * Math.sin(x + g));
      data[`sys/gpu.${g}/mem_used_mib`] = 30000 + g * 1000 + (i % 7) * 10;
      data[`sys/gpu.${g}/mem_total_mib`] = 81920;
      data[`sys/gpu.${g}/run_mem_mib`] = 29500 + g * 1000 + (i % 7) * 10;
      data[`sys/gpu.${g}/temp_c`] = Math.round(60 + 5 * Math.sin(x / 2 + g));
      data[`sys/gpu.${g}/power_w`] = 280 + 40 * Math.sin(x + g);
    }
    text += `${JSON.stringify({ ts: t0 + i * 10, type: "system", data })}\n`;
  }
  return text;
}

hubAndBrowser(
  (tmp) => {
    const hubDir = path.join(tmp.dir, "hub");
    const root = path.join(tmp.dir, "root");
    runHub(["--hub-dir", hubDir, "demo", "--once", "--no-ui", "--dir", root]);
    const { dir, meta } = runDir(root, "baseline");
    fs.writeFileSync(path.join(dir, "system.jsonl"), telemetry(meta.created_at + 2));
    runHub(["--hub-dir", hubDir, "sync"]);
    return ["--hub-dir", hubDir, "ui", "--offline", "--port", "0"];
  },
  (f) => ({ hub, browser, tmp } = f),
);

async function runKey(alias) {
  const page = await fetch(`${hub.url}api/runs?limit=100`).then((r) => r.json());
  const run = page.runs.find((r) => r.alias === alias);
  assert.ok(run, `${alias} is listed`);
  return run.key;
}

/** Chart facts of the System tab: per group, each chart's title and points drawn. */
function charts(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".tab-system .system-group")].map((g) => ({
      group: g.dataset.group,
      heading: g.querySelector("h2")?.textContent,
      charts: [...g.querySelectorAll("figure.chart")].map((c) => ({
        title: c.dataset.key,
        points: Number(c.dataset.points),
        rendered: c.dataset.rendered,
        canvas: c.querySelector("canvas") !== null,
      })),
    })),
  );
}

test("the System tab draws the process and per-GPU charts of a run's telemetry, offline", async () => {
  const key = await runKey("baseline");
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/run/${key}`);
  await page.click('.tabs button[data-tab="system"]');
  await page.waitForSelector('.tab-system[data-state="charts"] .chart-grid[data-rendered="1"]', { timeout: 30_000 });
  await page.waitForFunction(() => [...document.querySelectorAll(".tab-system .chart-grid")].every((g) => g.dataset.rendered === "1"), null, {
    timeout: 30_000,
  });
  assert.match(page.url(), /tab=system/);
  const groups = await charts(page);
  assert.deepEqual(
    groups.map((g) => g.heading),
    ["Process", "GPU 0", "GPU 1"],
  );
  const process = groups[0].charts;
  assert.deepEqual(
    process.map((c) => c.title),
    ["CPU (% of one core)", "Memory (RSS, MiB)", "I/O so far (MiB)", "Processes and threads"],
  );
  assert.equal(process[0].points, SAMPLES, "every CPU sample drawn");
  assert.equal(process[2].points, 2 * SAMPLES, "read and written");
  for (const g of groups.slice(1)) {
    assert.deepEqual(
      g.charts.map((c) => c.title),
      ["Utilisation (%)", "Memory (MiB)", "Temperature (°C)", "Power (W)"],
    );
    assert.equal(g.charts[1].points, 3 * SAMPLES, "used, the run's own and the total");
  }
  for (const c of groups.flatMap((g) => g.charts)) {
    assert.ok(c.canvas && c.rendered === "1" && c.points > 0, JSON.stringify(c));
  }
  assert.match(await page.textContent(".system-facts"), /360 samples/);
  assert.equal(await page.locator(".system-note").count(), 0, "current: no note");

  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  if ((await theme()) !== "light") await page.click(".theme-toggle");
  await page.waitForSelector('.tab-system .chart-grid[data-rendered="1"]');
  await screenshot(page, "system-tab-light");
  await page.click(".theme-toggle");
  assert.equal(await theme(), "dark");
  await page.waitForFunction(() => [...document.querySelectorAll(".tab-system .chart-grid")].every((g) => g.dataset.rendered === "1"));
  // Charts are drawn again in the dark theme's colours: the axis text is light.
  const axis = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--muted").trim());
  assert.equal(axis, "#9aa2b1");
  await screenshot(page, "system-tab-dark");
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await screenshot(page, "system-tab-dark-gpus");
  await page.click(".theme-toggle");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a run without telemetry shows the empty state", async () => {
  const key = await runKey("warmup-1k");
  const page = await browser.context.newPage();
  await page.goto(`${hub.url}#/run/${key}?tab=system`);
  await page.waitForSelector('.tab-system[data-state="empty"]', { timeout: 30_000 });
  const text = await page.textContent(".tab-system .state-empty");
  assert.match(text, /No system telemetry for this run: runs started with runicorn-agent run record CPU, memory and GPU use every 10 s/);
  assert.equal(await page.locator(".tab-system figure.chart").count(), 0);
  await screenshot(page, "system-tab-empty");
  await page.close();
});

test("the System tab of a real command under runicorn-agent run follows its telemetry as it grows", async () => {
  // A live hub: `runicorn-hub demo` wraps a real command (`runicorn-agent run`, a sample every
  // 2 s: bursts of CPU work and a buffer that grows) and keeps syncing while it runs.
  const liveTmp = tempDir();
  const root = path.join(liveTmp.dir, "root");
  const live = await startHub(["--hub-dir", path.join(liveTmp.dir, "hub"), "demo", "--dir", root, "--port", "0"]);
  try {
    let run;
    for (let i = 0; i < 600 && !run; i++) {
      const page = await fetch(`${live.url}api/runs?limit=100`).then((r) => r.json());
      run = page.runs.find((r) => r.alias === "wrapped-command");
      if (!run) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(run, "the demo's wrapped command is listed");
    assert.equal(run.status, "running");
    const page = await browser.context.newPage();
    await page.goto(`${live.url}#/run/${run.key}?tab=system`);
    const shown = () => page.evaluate(() => Number(document.querySelector(".tab-system .system-facts")?.textContent.match(/^(\d+) samples/)?.[1] ?? 0));
    await page.waitForFunction(() => /^[2-9]\d* samples|^\d{2,} samples/.test(document.querySelector(".tab-system .system-facts")?.textContent ?? ""), null, { timeout: 45_000 });
    const first = await shown();
    // More samples arrive while the page stays open: it shows them without being reloaded.
    await page.waitForFunction((n) => Number(document.querySelector(".tab-system .system-facts")?.textContent.match(/^(\d+) samples/)?.[1] ?? 0) > n, first, { timeout: 45_000 });
    const cpu = await page.getAttribute('.system-group[data-group="process"] figure.chart[data-key="CPU (% of one core)"]', "data-points");
    assert.ok(Number(cpu) > first, `CPU chart points ${cpu} after ${first} samples`);
    // What the charts draw is the real process: it works about 300 ms of every second.
    const sys = await fetch(`${live.url}api/runs/${run.key}/system`).then((r) => r.json());
    const series = (k) => sys.keys.find((s) => s.key === k)?.values ?? [];
    const busiest = Math.max(...series("sys/cpu_percent"));
    assert.ok(busiest > 5 && busiest < 200, `CPU % of the worker: ${series("sys/cpu_percent")}`);
    assert.ok(Math.max(...series("sys/rss_mib")) >= 8, `RSS of the worker: ${series("sys/rss_mib")}`);
    await screenshot(page, "system-tab-real-run");
    await page.close();
  } finally {
    await live.stop();
    liveTmp.cleanup();
  }
});
