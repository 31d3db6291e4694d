/**
 * The compare view (`#/compare?runs=1,2`, or any run references: `runs=gpu1/…,20261202_…`): the
 * selected runs' curves overlaid, one chart per
 * shared key, a legend naming each run (alias, remote and host) in its colour, the same
 * controls as a run's charts, and the config diff table. `raw=1` in the URL asks every stored
 * point instead of the downsampled series (the browser benchmark's baseline).
 */
import { api, type CompareAnswer, type CompareSeries, type Run, type RunCandidate } from "../api";
import { statusBadge } from "../components/badge";
import type { ChartSpec } from "../components/chart";
import { chartControls, loadSettings, type ChartSettings } from "../components/chartcontrols";
import { ChartGrid } from "../components/chartgrid";
import { h, message, replace } from "../lib/dom";
import { formatValue } from "../lib/format";
import { seriesColour } from "../lib/theme";
import { compareHash, runHash } from "../router";
import type { Page } from "./page";
import { candidateLinks } from "./run";
import { runHost, runName } from "./runs";

const POINTS = 1000;

export function comparePage(refs: string[], params: URLSearchParams): Page {
  const raw = params.get("raw") === "1";
  const el = h("div", { class: "page compare-page" }, h("h1", {}, "Compare runs"));
  if (refs.length === 0) {
    el.appendChild(message("empty", "No runs to compare. Select two or more runs in the ", h("a", { href: "#/runs" }, "runs table"), "."));
    return { el, destroy: () => {} };
  }
  let settings: ChartSettings = loadSettings();
  const grid = new ChartGrid();
  const legend = h("div", { class: "legend" });
  const status = h("div", {}, message("loading", "Loading…"));
  const diffBox = h("section", { class: "config-diff" });
  let answer: CompareAnswer | null = null;
  let xRange: [number, number] | null = null;
  let generation = 0;

  const controls = chartControls(settings, (s) => {
    const xChanged = s.x !== settings.x;
    settings = s;
    if (xChanged) {
      xRange = null;
      void load();
    } else render();
  });
  el.append(legend, controls, status, grid.el, diffBox);

  const runIndex = () => new Map((answer?.runs ?? []).map((r, i) => [r.key, i]));

  const t0 = (r: Run | undefined, s: CompareSeries): number => {
    if (r?.created_at !== null && r?.created_at !== undefined) return r.created_at;
    const t = s.times.find((x) => x !== null);
    return t ?? 0;
  };

  const spec = (key: string): ChartSpec => {
    const runs = answer!.runs;
    const idx = runIndex();
    const series = answer!.series
      .filter((s) => s.key === key)
      .sort((a, b) => (idx.get(a.run) ?? 0) - (idx.get(b.run) ?? 0))
      .map((s) => {
        const i = idx.get(s.run) ?? 0;
        const run = runs[i];
        let xs: number[];
        let ys: (number | null)[];
        if (settings.x === "step") {
          xs = s.steps;
          ys = s.values;
        } else {
          const shift = settings.x === "relative" ? t0(run, s) : 0;
          xs = [];
          ys = [];
          s.times.forEach((t, j) => {
            if (t === null) return;
            xs.push(t - shift);
            ys.push(s.values[j] ?? null);
          });
        }
        return { label: run ? runName(run) : String(s.run), colour: seriesColour(i), xs, ys };
      });
    return {
      title: key,
      series,
      xMode: settings.x,
      smoothing: settings.smoothing,
      logY: settings.logY,
      legend: false,
      xRange,
      // Charts share the cursor and selection, so every chart reports the same zoom: one load.
      // Relative time shifts each run differently: that zoom stays on the loaded points.
      onZoom: (min, max) => {
        xRange = [min, max];
        if (settings.x !== "relative") scheduleLoad();
      },
      onReset: () => {
        if (xRange === null) return;
        xRange = null;
        scheduleLoad();
      },
    };
  };

  const render = () => {
    if (!answer) return;
    grid.set(answer.keys.map((k) => ({ key: k, spec: spec(k) })));
  };

  const renderLegend = () => {
    replace(
      legend,
      ...answer!.runs.map((r, i) =>
        h(
          "a",
          { class: "legend-item", href: runHash(r.key), dataset: { run: String(r.key) } },
          h("span", { class: "swatch", style: { background: seriesColour(i) } }),
          h("span", { class: "legend-name" }, runName(r)),
          h("span", { class: "muted small" }, runHost(r)),
          statusBadge(r.status, r.reason),
        ),
      ),
    );
  };

  const renderDiff = () => {
    const a = answer!;
    const only = h("input", { type: "checkbox", checked: true, class: "only-diff" });
    const body = h("tbody");
    const fill = () => {
      replace(
        body,
        ...a.config_diff
          .filter((row) => !only.checked || row.differs)
          .map((row) =>
            h(
              "tr",
              { class: row.differs ? "differs" : "", dataset: { key: row.key } },
              h("td", { class: "key" }, row.key),
              ...row.values.map((v) => h("td", {}, formatValue(v))),
            ),
          ),
      );
      if (!body.firstChild)
        body.appendChild(h("tr", {}, h("td", { colSpan: a.runs.length + 1, class: "muted" }, only.checked ? "The configs do not differ." : "No config keys.")));
    };
    only.addEventListener("change", fill);
    fill();
    replace(
      diffBox,
      h("h2", {}, "Config"),
      h("label", { class: "check" }, only, " Show only differences"),
      h(
        "div",
        { class: "table-box" },
        h(
        "table",
        { class: "data diff" },
        h("thead", {}, h("tr", {}, h("th", {}, "Key"), ...a.runs.map((r, i) => h("th", {}, h("span", { class: "swatch", style: { background: seriesColour(i) } }), runName(r))))),
        body,
        ),
      ),
    );
  };

  let loadTimer: ReturnType<typeof setTimeout> | undefined;
  function scheduleLoad(): void {
    clearTimeout(loadTimer);
    loadTimer = setTimeout(() => void load(), 0);
  }

  async function load(): Promise<void> {
    const gen = ++generation;
    const x = settings.x === "step" ? "step" : "time";
    try {
      let ans: CompareAnswer;
      if (raw) {
        // Baseline: every stored point, one raw request per run.
        const head = await api.compare({ runs: refs.join(","), x, points: 2 });
        const per = await Promise.all(
          head.runs.map((r) => api.metrics(r.key, { keys: head.keys.join(","), x, raw: true })),
        );
        ans = { ...head, series: per.flatMap((m) => m.series.map((s) => ({ ...s, run: m.run }))) };
      } else {
        ans = await api.compare({
          runs: refs.join(","),
          x,
          points: POINTS,
          from: xRange && settings.x !== "relative" ? xRange[0] : undefined,
          to: xRange && settings.x !== "relative" ? xRange[1] : undefined,
        });
      }
      if (gen !== generation) return;
      const first = answer === null;
      answer = ans;
      if (first) {
        renderLegend();
        renderDiff();
      }
      replace(status, ans.keys.length === 0 ? message("empty", "These runs share no metric key.") : null);
      render();
    } catch (e) {
      if (gen !== generation) return;
      // An ambiguous reference: each candidate's link takes its place in the comparison.
      const choose = (ref: string, c: RunCandidate) =>
        compareHash(refs.map((r) => (r === c.run_id || r === `${c.remote}/${c.run_id}` ? ref : r)));
      replace(status, message("error", `Could not compare: ${(e as Error).message}`), candidateLinks(e, choose));
    }
  }

  const onTheme = () => {
    grid.set([]);
    render();
  };
  window.addEventListener("runicorn:theme", onTheme);
  void load();
  return {
    el,
    destroy: () => {
      window.removeEventListener("runicorn:theme", onTheme);
      grid.destroy();
    },
  };
}
