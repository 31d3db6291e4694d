#!/usr/bin/env node
// Browser benchmark of the parallel coordinates (web/ui/src/components/parcoords.ts): 5,000
// runs × 8 axes (6 numeric, 2 text), brushed on one axis over animation frames (goal: each
// brush update, selection and redraw, within one frame: 16.7 ms).
//
//   node bench/browser/parcoords_brush.mjs [--quick] [--runs N] [--frames N]
//
// The component itself is bundled with esbuild (from web/ui/node_modules) into a page of its
// own in headless Chromium (no hub: the compare page holds at most 50 runs, the API's bound).
// Each frame moves the brush of one axis and records the component's own update time
// (`lastUpdateMs`) and the interval between frames. Baseline in the same run: the same brush
// moves with a full redraw per update (`set` with the brushes: every line, background and
// foreground, and the scales recomputed), what a single-canvas implementation would do.
//
// Needs: Debian's /usr/bin/chromium (RUNICORN_CHROMIUM overrides), node_modules in web/ui.
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ui = path.join(repo, "web/ui");
const support = await import(pathToFileURL(path.join(ui, "tests/browser/support.mjs")).href);
const { createRequire } = await import("node:module");
const esbuild = createRequire(path.join(ui, "package.json"))("esbuild");

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const quick = argv.includes("--quick");
const runs = Number(opt("--runs", 5000));
const frames = Number(opt("--frames", quick ? 30 : 120));

const bundle = await esbuild.build({
  stdin: {
    contents: `import { ParCoords } from "./src/components/parcoords"; window.ParCoords = ParCoords;`,
    resolveDir: ui,
    loader: "ts",
  },
  bundle: true,
  write: false,
  format: "iife",
  target: "es2020",
});
const script = bundle.outputFiles[0].text;

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return { p50: q(50), p95: q(95), max: s[s.length - 1], over16: xs.filter((x) => x > 16.7).length };
}

const browser = await support.launchBrowser({ viewport: { width: 1600, height: 900 } });
try {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setContent(`<!doctype html><html><body style="margin:0"><div id="host" style="width:1500px"></div></body></html>`);
  await page.addScriptTag({ content: script });
  const result = await page.evaluate(
    async ({ runs, frames }) => {
      let seed = 42;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
      const axes = [];
      for (let a = 0; a < 6; a++) axes.push({ key: `metric.m${a}`, label: `m${a}`, values: Array.from({ length: runs }, () => (rand() < 0.01 ? null : rand() * 10 ** a)) });
      axes.push({ key: "config.optimizer", label: "optimizer", values: Array.from({ length: runs }, () => ["sgd", "adam", "adamw", "lion"][Math.floor(rand() * 4)]) });
      axes.push({ key: "config.arch", label: "arch", values: Array.from({ length: runs }, () => `resnet${[18, 34, 50, 101, 152][Math.floor(rand() * 5)]}`) });
      const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
      const colours = Array.from({ length: runs }, (_, i) => palette[i % palette.length]);
      const pc = new window.ParCoords(() => {});
      document.getElementById("host").appendChild(pc.el);
      const t0 = performance.now();
      pc.set(colours, axes);
      const firstDraw = performance.now() - t0;
      const brushAt = (i) => {
        const lo = 0.1 + 0.6 * (i / frames);
        return [lo, lo + 0.3];
      };
      const run = (update) =>
        new Promise((resolve) => {
          const work = [];
          const interval = [];
          const selected = [];
          let last = null;
          let i = 0;
          const step = (ts) => {
            if (last !== null) interval.push(ts - last);
            last = ts;
            if (i === frames) return resolve({ work, interval, selected });
            work.push(update(brushAt(i)));
            selected.push(Number(pc.el.dataset.selected));
            i++;
            requestAnimationFrame(step);
          };
          requestAnimationFrame(step);
        });
      const ours = await run((b) => {
        pc.setBrush("metric.m2", b);
        return pc.lastUpdateMs;
      });
      pc.setBrush("metric.m2", null);
      const full = await run((b) => {
        const start = performance.now();
        pc.set(colours, axes, new Map([["metric.m2", b]]));
        return performance.now() - start;
      });
      return { firstDraw, ours, full };
    },
    { runs, frames },
  );
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  if (!result.ours.selected.every((n, i) => n === result.full.selected[i])) throw new Error("the full redraw selected other runs than the brush update");
  const o = stats(result.ours.work);
  const f = stats(result.full.work);
  const oi = stats(result.ours.interval);
  const fi = stats(result.full.interval);
  const fmt = (v) => v.toFixed(2);
  const head = ["variant", "update p50 / p95 / max ms", "updates over 16.7 ms (of N)", "frame interval p50 / p95 ms"];
  console.log(`runs ${runs} × 8 axes; first draw ${fmt(result.firstDraw)} ms; selected per frame ${Math.min(...result.ours.selected)}–${Math.max(...result.ours.selected)}`);
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  console.log(`| brush update (foreground only) | ${fmt(o.p50)} / ${fmt(o.p95)} / ${fmt(o.max)} | ${o.over16} of ${frames} | ${fmt(oi.p50)} / ${fmt(oi.p95)} |`);
  console.log(`| baseline: full redraw | ${fmt(f.p50)} / ${fmt(f.p95)} / ${fmt(f.max)} | ${f.over16} of ${frames} | ${fmt(fi.p50)} / ${fmt(fi.p95)} |`);
  console.log(`full redraw / brush update p50: ${(f.p50 / Math.max(o.p50, 0.01)).toFixed(1)}x; goal p95 < 16.7 ms: ${o.p95 < 16.7 ? "met" : "NOT met"}`);
  console.log(JSON.stringify({ machine: `${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}`, runs, frames, firstDraw: result.firstDraw, brush: o, full: f }));
} finally {
  await browser.close();
}
