#!/usr/bin/env node
// Browser benchmark of the compare page grouped: 20 runs × 100,000 points (keys loss, acc; the
// store of compare_pan.mjs) grouped by config.optim.lr into 4 groups of 5 runs, each group drawn
// as its mean with a min–max band (goal: first render < 1 s).
//
//   node bench/browser/compare_grouped.mjs [--quick] [--store DIR] [--fresh] [--repeats N]
//
// 1. `dashboard_queries --compare-store DIR` writes the store (reused from DIR/ids.json unless
//    --fresh; RUNICORN_BENCH_BIN names a prebuilt dashboard_queries, else cargo run --release).
// 2. `runicorn-hub --hub-dir DIR ui --offline --port 0` serves it (RUNICORN_HUB_BIN overrides
//    the release build).
// 3. Headless Chromium opens `#/compare?runs=…&group=config.optim.lr&band=minmax` and measures
//    the time from navigation to every chart drawn (`window.__runicornRendered`); the median of
//    the repeats is reported.
// 4. Baseline in the same run: the same page ungrouped (`group=`), 20 curves per chart.
//
// Needs: cargo, Debian's /usr/bin/chromium (RUNICORN_CHROMIUM overrides), node_modules in web/ui.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
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
const repeats = Number(opt("--repeats", quick ? 1 : 5));
const GROUP = "config.optim.lr";

const log = (...a) => console.error(...a);

function makeStore() {
  const idsFile = path.join(storeDir, "ids.json");
  if (!fresh && existsSync(idsFile) && existsSync(path.join(storeDir, "store.sqlite"))) return JSON.parse(readFileSync(idsFile, "utf8"));
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

/** Opens the page once: ms from navigation to all charts drawn, and what was drawn. */
async function measure(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "commit" });
  await page.waitForFunction(() => typeof window.__runicornRendered === "number", null, { timeout: 600_000, polling: 50 });
  const info = await page.evaluate(() => ({
    rendered: window.__runicornRendered,
    charts: window.__runicornCharts.length,
    series: window.__runicornCharts.reduce((n, u) => n + u.series.length - 1, 0),
    groups: Number(document.querySelector(".chart-grid").dataset.groups),
    dataAt: Math.max(0, ...performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/")).map((e) => e.responseEnd)),
  }));
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  await page.close();
  return info;
}

async function variant(context, base, ids, group) {
  const url = `${base}#/compare?runs=${ids.join(",")}&group=${group}&band=minmax&smooth=0.6`;
  const runs = [];
  for (let i = 0; i < repeats; i++) runs.push(await measure(context, url));
  const med = (f) => runs.map(f).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  return { name: group ? `grouped by ${group}` : "baseline: ungrouped", render: med((r) => r.rendered), renders: runs.map((r) => r.rendered), dataAt: med((r) => r.dataAt), groups: runs[0].groups, charts: runs[0].charts, series: runs[0].series };
}

const ids = makeStore();
log(`runs: ${ids.length}`);
const hub = await startHub(["--hub-dir", storeDir, "ui", "--offline", "--port", "0"], { bin: hubBinary() });
const browser = await launchBrowser({ viewport: { width: 1600, height: 1000 } });
try {
  const grouped = await variant(browser.context, hub.url, ids, GROUP);
  const plain = await variant(browser.context, hub.url, ids, "");
  if (grouped.groups !== 4) throw new Error(`expected 4 groups, the page drew ${grouped.groups}`);
  const fmt = (v) => v.toFixed(1);
  const head = ["variant", "first render ms (median)", "API data in by ms", "groups", "uPlot series"];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  for (const v of [grouped, plain]) console.log(`| ${v.name} | ${fmt(v.render)} | ${fmt(v.dataAt)} | ${v.groups} | ${v.series} |`);
  console.log(`grouped / ungrouped first render: ${(grouped.render / plain.render).toFixed(2)}x; goal < 1000 ms: ${grouped.render < 1000 ? "met" : "NOT met"}`);
  console.log(JSON.stringify({ machine: `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}`, runs: ids.length, repeats, grouped, baseline: plain }));
} finally {
  await browser.close();
  await hub.stop();
}
