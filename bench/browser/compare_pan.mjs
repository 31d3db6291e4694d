#!/usr/bin/env node
// Browser benchmark of the dashboard's compare view: 20 runs x 100,000 points (keys loss, acc).
//
//   node bench/browser/compare_pan.mjs [--quick] [--store DIR] [--fresh]
//
// 1. `dashboard_queries --compare-store DIR` (runicorn-bench, release) writes the store and
//    prints the run ids (reused from DIR/ids.json on later runs unless --fresh).
// 2. `runicorn-hub --hub-dir DIR ui --offline --port 0` (release; RUNICORN_HUB_BIN overrides)
//    serves it (offline: the store's remote is made up, there is nothing to sync).
// 3. Headless Chromium opens `#/compare?runs=…` and measures the time from navigation to every
//    chart drawn (`window.__runicornRendered`), then zooms and pans all charts with uPlot's
//    setScale over N animation frames, recording each frame's work (setScale to the last
//    chart's draw) and the interval between frames.
// 4. Baseline in the same run: the same page with `raw=1`, every stored point (2,000,000 per
//    key) fetched and drawn instead of the server's downsampled series. Prints the ratios.
//
// Needs: cargo, Debian's /usr/bin/chromium (RUNICORN_CHROMIUM overrides), and node_modules in
// web/ui (npm ci there).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// The helpers beside the browser tests (they load playwright-core from web/ui/node_modules).
const support = await import(pathToFileURL(path.join(repo, "web/ui/tests/browser/support.mjs")).href);
const { launchBrowser, startHub } = support;

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const quick = flag("--quick");
const storeDir = path.resolve(opt("--store", path.join(repo, "bench/out/browser-compare-store")));
const fresh = flag("--fresh");
const frames = Number(opt("--frames", quick ? 30 : 60));
const repeats = Number(opt("--repeats", quick ? 1 : 3));
const smoothing = Number(opt("--smoothing", 0.6));
const shotDir = opt("--screenshots", null);
const skipBaseline = flag("--no-baseline");

function log(...a) {
  console.error(...a);
}

function makeStore() {
  const idsFile = path.join(storeDir, "ids.json");
  if (!fresh && existsSync(idsFile) && existsSync(path.join(storeDir, "store.sqlite"))) {
    return JSON.parse(readFileSync(idsFile, "utf8"));
  }
  mkdirSync(storeDir, { recursive: true });
  log(`writing the compare store into ${storeDir} …`);
  const args = ["--compare-store", storeDir];
  const out = process.env.RUNICORN_BENCH_BIN
    ? execFileSync(process.env.RUNICORN_BENCH_BIN, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })
    : execFileSync("cargo", ["run", "--quiet", "--release", "-p", "runicorn-bench", "--bin", "dashboard_queries", "--", ...args], {
        cwd: repo,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      });
  const line = out.trim().split("\n").reverse().find((l) => l.trim().startsWith("["));
  if (!line) throw new Error(`dashboard_queries printed no JSON array of run ids:\n${out}`);
  const ids = JSON.parse(line);
  writeFileSync(idsFile, JSON.stringify(ids));
  return ids;
}

function hubBinary() {
  if (process.env.RUNICORN_HUB_BIN) return process.env.RUNICORN_HUB_BIN;
  const bin = path.join(repo, "target/release/runicorn-hub");
  if (!existsSync(bin) || !process.env.RUNICORN_NO_BUILD) {
    log("building runicorn-hub (release) …");
    execFileSync("cargo", ["build", "--quiet", "--release", "-p", "runicorn-hub", "--bin", "runicorn-hub"], { cwd: repo, stdio: "inherit" });
  }
  return bin;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return {
    p50: q(50),
    p95: q(95),
    max: s[s.length - 1],
    // rAF intervals come in multiples of the 16.7 ms vsync: a frame on time measures ~16.7, so
    // "missed one vsync" is > 17.5 ms and "missed two" > 34.2 ms.
    over16: xs.filter((x) => x > 17.5).length,
    over33: xs.filter((x) => x > 34.2).length,
  };
}

/** Opens the compare page once: time to all charts drawn, then the pan/zoom frames. */
async function measure(context, url, { withFrames }) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "commit" });
  await page.waitForFunction(() => typeof window.__runicornRendered === "number", null, { timeout: 600_000, polling: 50 });
  const info = await page.evaluate(() => ({
    rendered: window.__runicornRendered,
    charts: window.__runicornCharts.length,
    series: window.__runicornCharts.reduce((n, u) => n + u.series.length - 1, 0),
    points: [...document.querySelectorAll(".chart")].reduce((n, c) => n + Number(c.dataset.points), 0),
    // when the last API answer had fully arrived (the rest of the first render is the page's)
    dataAt: Math.max(0, ...performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/")).map((e) => e.responseEnd)),
  }));
  let frameStats = null;
  if (withFrames) {
    frameStats = await page.evaluate(async (n) => {
      const charts = window.__runicornCharts;
      const [min0, max0] = [charts[0].scales.x.min, charts[0].scales.x.max];
      const span0 = max0 - min0;
      let drawn = 0;
      let drawnAt = 0;
      for (const u of charts) {
        u.hooks.draw = u.hooks.draw || [];
        u.hooks.draw.push(() => {
          drawn++;
          drawnAt = performance.now();
        });
      }
      const work = [];
      const interval = [];
      let last = null;
      await new Promise((resolve) => {
        let i = 0;
        const step = (ts) => {
          if (last !== null) interval.push(ts - last);
          last = ts;
          if (i === n) return resolve();
          // first half: zoom into the middle tenth; second half: pan that window to the right
          const half = n / 2;
          let min;
          let span;
          if (i < half) {
            const t = (i + 1) / half;
            span = span0 * (1 - 0.9 * t);
            min = min0 + (span0 - span) / 2;
          } else {
            const t = (i - half + 1) / half;
            span = span0 * 0.1;
            min = min0 + 0.45 * span0 + t * 0.45 * span0;
          }
          const start = performance.now();
          drawn = 0;
          for (const u of charts) u.setScale("x", { min, max: min + span });
          // uPlot draws on a microtask after setScale: wait for it, then count the work
          queueMicrotask(() =>
            queueMicrotask(() => {
              work.push((drawn >= charts.length ? drawnAt : performance.now()) - start);
            }),
          );
          i++;
          requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      });
      return { work, interval };
    }, frames);
  }
  if (shotDir) {
    mkdirSync(shotDir, { recursive: true });
    await page.screenshot({ path: path.join(shotDir, `compare-${url.includes("raw=1") ? "raw" : "downsampled"}-after-pan.png`) });
  }
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  await page.close();
  return { ...info, frames: frameStats };
}

async function variant(context, base, ids, raw) {
  const url = `${base}#/compare?runs=${ids.join(",")}${raw ? "&raw=1" : ""}`;
  const renders = [];
  const dataAts = [];
  let frames = null;
  let info = null;
  const n = raw ? Math.max(1, Math.min(repeats, 2)) : repeats;
  for (let i = 0; i < n; i++) {
    const m = await measure(context, url, { withFrames: i === n - 1 });
    renders.push(m.rendered);
    dataAts.push(m.dataAt);
    info = m;
    if (m.frames) frames = m.frames;
  }
  renders.sort((a, b) => a - b);
  dataAts.sort((a, b) => a - b);
  return {
    name: raw ? "baseline: raw=1 (every point)" : "dashboard (server-downsampled)",
    render: renders[Math.floor(renders.length / 2)],
    renders,
    dataAt: dataAts[Math.floor(dataAts.length / 2)],
    charts: info.charts,
    series: info.series,
    points: info.points,
    work: stats(frames.work),
    interval: stats(frames.interval),
  };
}

const ids = makeStore();
if (!Array.isArray(ids) || ids.length === 0) throw new Error(`no run ids: ${JSON.stringify(ids)}`);
log(`runs: ${ids.length}`);
const hub = await startHub(["--hub-dir", storeDir, "ui", "--offline", "--port", opt("--port", "0")], { bin: hubBinary() });
const browser = await launchBrowser({ viewport: { width: 1600, height: 1000 } });
// The dashboard's default chart settings (EMA 0.6 unless --smoothing, linear y, x = step).
await browser.context.addInitScript((s) => {
  localStorage.setItem("runicorn.chart", JSON.stringify({ smoothing: s, logY: false, x: "step" }));
}, smoothing);
try {
  // RUNICORN_UI_URL: measure a UI served elsewhere over this hub's API (while changing the UI:
  // `RUNICORN_API=<hub url> npx vite preview` in web/ui), without rebuilding the hub.
  const ui = process.env.RUNICORN_UI_URL ?? hub.url;
  const ours = await variant(browser.context, ui, ids, false);
  const base = skipBaseline ? ours : await variant(browser.context, ui, ids, true);
  const fmt = (v) => (typeof v === "number" ? v.toFixed(1) : String(v));
  const rows = [ours, base].map((v) => [
    v.name,
    fmt(v.render),
    fmt(v.dataAt),
    String(v.points),
    `${fmt(v.work.p50)} / ${fmt(v.work.p95)} / ${fmt(v.work.max)}`,
    `${fmt(v.interval.p50)} / ${fmt(v.interval.p95)} / ${fmt(v.interval.max)}`,
    `${v.interval.over16} / ${v.interval.over33} (of ${frames})`,
  ]);
  const head = ["variant", "first render ms", "API data in by ms", "points drawn", "frame work p50/p95/max ms", "frame interval p50/p95/max ms", "frames over 17.5 / 34.2 ms (of N)"];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  console.log(
    `ratio baseline/dashboard: first render ${(base.render / ours.render).toFixed(1)}x, frame work p95 ${(base.work.p95 / Math.max(ours.work.p95, 0.01)).toFixed(1)}x, frame interval p95 ${(base.interval.p95 / ours.interval.p95).toFixed(1)}x`,
  );
  console.log(
    JSON.stringify({
      machine: `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
      runs: ids.length,
      frames,
      repeats,
      dashboard: ours,
      baseline: base,
    }),
  );
} finally {
  await browser.close();
  await hub.stop();
}
