/**
 * The compare view (`#/compare?runs=1,2`, or any run references: `runs=gpu1/…,20261202_…`): the
 * selected runs' curves overlaid, one chart per shared key, with the values of every series at
 * the cursor; a legend naming each run (alias, remote and host) in its colour; the charts'
 * controls plus grouping (by path or any config key: each group drawn as its mean with a
 * min–max or ±std band); "Export CSV" of the compared metrics; the summary table (last, min,
 * max of each metric, best highlighted, group rows with aggregates); parallel coordinates of
 * chosen config keys and metrics whose brushes filter the runs of the charts and the table; the
 * media panels (each image key side by side across the runs under one step slider); and the
 * config diff table.
 *
 * The view settings (group, band, parcoords axes, smoothing) live in the URL and are remembered
 * per browser (`lib/compare_view`). `raw=1` in the URL asks every stored point instead of the
 * downsampled series (the browser benchmark's baseline).
 */
import { api, type CompareAnswer, type CompareSeries, type MediaAnswer, type Run, type RunCandidate, type SeriesStatsDto } from "../api";
import { statusBadge } from "../components/badge";
import type { ChartSeries, ChartSpec } from "../components/chart";
import { chartControls, loadSettings, type ChartSettings } from "../components/chartcontrols";
import { ChartGrid } from "../components/chartgrid";
import { mediaCompare } from "../components/media_panel";
import { ParCoords, type Brush } from "../components/parcoords";
import { summaryTable, type SummaryGroup } from "../components/summary_table";
import { loadCompareView, saveCompareView, viewParams, type CompareView } from "../lib/compare_view";
import { downloadCsv, toCsv, type CsvCell } from "../lib/csv";
import { h, message, replace } from "../lib/dom";
import { formatValue } from "../lib/format";
import { groupBy, groupLabel, groupSeries } from "../lib/group_stats";
import { seriesColour } from "../lib/theme";
import { buildHash, compareHash, replaceHash, runHash, withParams } from "../router";
import type { Page } from "./page";
import { candidateLinks } from "./run";
import { runHost, runName } from "./runs";

const POINTS = 1000;
/** Parallel-coordinates axes chosen by default: differing config keys, then metrics. */
const DEFAULT_AXES = 8;

export function comparePage(refs: string[], params: URLSearchParams): Page {
  const raw = params.get("raw") === "1";
  const el = h("div", { class: "page compare-page" }, h("h1", {}, "Compare runs"));
  if (refs.length === 0) {
    el.appendChild(message("empty", "No runs to compare. Select two or more runs in the ", h("a", { href: "#/runs" }, "runs table"), "."));
    return { el, destroy: () => {} };
  }
  const view: CompareView = loadCompareView(params);
  let settings: ChartSettings = loadSettings();
  if (view.smoothing !== null) settings = { ...settings, smoothing: view.smoothing };
  const grid = new ChartGrid();
  const legend = h("div", { class: "legend" });
  const status = h("div", {}, message("loading", "Loading…"));
  const summaryBox = h("section", { class: "summary" });
  const parBox = h("section", { class: "parcoords-box" });
  const diffBox = h("section", { class: "config-diff" });
  const mediaBox = h("section", { class: "compare-media" });
  /** Each run's images (by index in answer.runs), once loaded. */
  let media: (MediaAnswer | null)[] | null = null;
  let answer: CompareAnswer | null = null;
  let xRange: [number, number] | null = null;
  let generation = 0;
  /** Runs (by index in answer.runs) inside every parallel-coordinates brush. */
  let selected: Uint8Array | null = null;
  let brushes = new Map<string, Brush>();

  /** Writes the view to the URL (no re-route) and to this browser's memory. */
  const saveView = () => {
    view.smoothing = settings.smoothing;
    const current = new URLSearchParams(window.location.hash.split("?")[1] ?? "");
    replaceHash(buildHash("compare", withParams(current, viewParams(view))));
    saveCompareView(view);
  };

  const groupSelect = h("select", { class: "group-by", attrs: { "aria-label": "Group by" } });
  const bandSelect = h(
    "select",
    { class: "band-kind", attrs: { "aria-label": "Band" } },
    h("option", { value: "minmax", selected: view.band === "minmax" }, "min–max band"),
    h("option", { value: "std", selected: view.band === "std" }, "±std band"),
  );
  const exportButton = h("button", { type: "button", class: "export-csv" }, "Export CSV");
  groupSelect.addEventListener("change", () => {
    view.group = groupSelect.value;
    saveView();
    renderAll();
  });
  bandSelect.addEventListener("change", () => {
    view.band = bandSelect.value === "std" ? "std" : "minmax";
    saveView();
    render();
  });
  exportButton.addEventListener("click", () => void exportCsv());

  const controls = chartControls(
    settings,
    (s) => {
      const xChanged = s.x !== settings.x;
      settings = s;
      saveView();
      if (xChanged) {
        xRange = null;
        void load();
      } else render();
    },
    [h("label", { class: "check" }, "Group by ", groupSelect), bandSelect, exportButton],
  );
  const parcoords = new ParCoords((sel, b) => {
    brushes = b;
    selected = b.size === 0 ? null : sel;
    scheduleBrushRender();
  });
  el.append(legend, controls, status, grid.el, summaryBox, parBox, mediaBox, diffBox);

  const runIndex = () => new Map((answer?.runs ?? []).map((r, i) => [r.key, i]));
  const visible = (i: number) => selected === null || selected[i] === 1;

  const t0 = (r: Run | undefined, s: CompareSeries): number => {
    if (r?.created_at !== null && r?.created_at !== undefined) return r.created_at;
    const t = s.times.find((x) => x !== null);
    return t ?? 0;
  };

  /** The config values of one flattened key, in run order (from the server's diff table). */
  const configValues = (key: string): unknown[] | undefined => answer?.config_diff.find((r) => r.key === key)?.values;

  /** Group label of each run under the current grouping ("" when not grouped). */
  const groupOf = (): ((i: number) => string) | null => {
    if (!answer || view.group === "") return null;
    if (view.group === "path") return (i) => answer!.runs[i]!.path;
    const values = configValues(view.group.replace(/^config\./, ""));
    if (!values) return null;
    return (i) => groupLabel(values[i]);
  };

  /** The visible runs' groups, in order of first appearance: label → run indexes. */
  const groups = (): Map<string, number[]> | null => {
    const of = groupOf();
    if (!of || !answer) return null;
    const idx = answer.runs.map((_, i) => i).filter(visible);
    return groupBy(idx, of);
  };

  const xy = (s: CompareSeries): { xs: number[]; ys: (number | null)[] } => {
    if (settings.x === "step") return { xs: s.steps, ys: s.values };
    const run = answer!.runs[runIndex().get(s.run) ?? 0];
    const shift = settings.x === "relative" ? t0(run, s) : 0;
    const xs: number[] = [];
    const ys: (number | null)[] = [];
    s.times.forEach((t, j) => {
      if (t === null) return;
      xs.push(t - shift);
      ys.push(s.values[j] ?? null);
    });
    return { xs, ys };
  };

  const spec = (key: string, grouped: Map<string, number[]> | null): ChartSpec => {
    const runs = answer!.runs;
    const idx = runIndex();
    const ofKey = answer!.series.filter((s) => s.key === key && visible(idx.get(s.run) ?? 0));
    let series: ChartSeries[];
    if (grouped) {
      const byRun = new Map(ofKey.map((s) => [idx.get(s.run) ?? 0, s]));
      series = [...grouped].map(([label, members], g) => {
        const stats = groupSeries(
          members.flatMap((i) => (byRun.has(i) ? [xy(byRun.get(i)!)] : [])),
          { interpolate: true },
        );
        return {
          label: `${label} (${members.length})`,
          colour: seriesColour(g),
          xs: stats.xs,
          ys: stats.mean,
          band: view.band === "std" ? { lo: stats.lo, hi: stats.hi } : { lo: stats.min, hi: stats.max },
        };
      });
    } else {
      series = ofKey
        .sort((a, b) => (idx.get(a.run) ?? 0) - (idx.get(b.run) ?? 0))
        .map((s) => {
          const i = idx.get(s.run) ?? 0;
          const run = runs[i];
          return { label: run ? runName(run) : String(s.run), colour: seriesColour(i), ...xy(s) };
        });
    }
    return {
      title: key,
      series,
      xMode: settings.x,
      smoothing: settings.smoothing,
      logY: settings.logY,
      legend: false,
      tooltip: true,
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
    const grouped = groups();
    grid.el.dataset.groups = grouped ? String(grouped.size) : "0";
    grid.set(answer.keys.map((k) => ({ key: k, spec: spec(k, grouped) })));
  };

  const renderSummary = () => {
    if (!answer) return;
    const a = answer;
    const stats = new Map<string, SeriesStatsDto>(a.stats.map((s) => [`${s.run}\u0000${s.key}`, s]));
    const grouped = groups();
    const rows = a.runs.map((r, i) => ({ run: r, index: i })).filter((r) => visible(r.index));
    const sgroups: SummaryGroup[] | null = grouped
      ? [...grouped].map(([label, members], g) => ({ label, colour: seriesColour(g), members }))
      : null;
    const colourOf = new Map((sgroups ?? []).flatMap((g) => g.members.map((i) => [i, g.colour] as const)));
    replace(
      summaryBox,
      h("h2", {}, "Summary"),
      summaryTable({
        // Grouped, a run wears its group's colour (as its group's curve in the charts).
        runs: rows.map((r) => ({ index: r.index, name: runName(r.run), colour: colourOf.get(r.index) ?? seriesColour(r.index), href: runHash(r.run.key), key: r.run.key })),
        keys: a.keys,
        stat: (run, key) => stats.get(`${run}\u0000${key}`),
        groups: sgroups,
        groupBy: view.group,
      }),
    );
  };

  /** Dimensions the parallel coordinates may show: config keys, then metrics' last values. */
  const dimensions = (): { id: string; label: string; values: unknown[] }[] => {
    const a = answer!;
    const stats = new Map(a.stats.map((s) => [`${s.run}\u0000${s.key}`, s]));
    return [
      ...a.config_diff.map((row) => ({ id: `config.${row.key}`, label: row.key, values: row.values, differs: row.differs })),
      ...a.keys.map((k) => ({ id: `metric.${k}`, label: `${k} (last)`, values: a.runs.map((r) => stats.get(`${r.key}\u0000${k}`)?.last ?? null), differs: true })),
    ];
  };

  const defaultAxes = (): string[] => {
    const a = answer!;
    const config = a.config_diff.filter((r) => r.differs).slice(0, DEFAULT_AXES / 2).map((r) => `config.${r.key}`);
    const metrics = a.keys.slice(0, DEFAULT_AXES - config.length).map((k) => `metric.${k}`);
    return [...config, ...metrics];
  };

  const renderParcoords = () => {
    const a = answer!;
    const dims = dimensions();
    const byId = new Map(dims.map((d) => [d.id, d]));
    const chosen = (view.axes ?? defaultAxes()).filter((id) => byId.has(id));
    const chooser = h("details", { class: "pc-chooser" }, h("summary", {}, `Axes (${chosen.length} of ${dims.length})`));
    const list = h("div", { class: "pc-choices" });
    for (const d of dims) {
      const box = h("input", { type: "checkbox", checked: chosen.includes(d.id), dataset: { axis: d.id } });
      box.addEventListener("change", () => {
        const now = (view.axes ?? defaultAxes()).filter((id) => byId.has(id) && id !== d.id);
        view.axes = box.checked ? [...now, d.id] : now;
        saveView();
        renderParcoords();
        renderAll();
      });
      list.appendChild(h("label", { class: "check" }, box, ` ${d.id}`));
    }
    chooser.appendChild(list);
    const clear = h("button", { type: "button", class: "pc-clear" }, "Clear brushes");
    const count = h("span", { class: "muted small pc-count" });
    clear.addEventListener("click", () => {
      for (const k of [...brushes.keys()]) parcoords.setBrush(k, null);
    });
    replace(
      parBox,
      h("h2", {}, "Parallel coordinates"),
      h("div", { class: "toolbar" }, chooser, clear, count, h("span", { class: "muted small" }, "Drag along an axis to keep the runs inside; click an axis to clear its brush.")),
      parcoords.el,
    );
    parcoords.set(
      a.runs.map((_, i) => seriesColour(i)),
      chosen.map((id) => ({ key: id, label: byId.get(id)!.label, values: byId.get(id)!.values })),
    );
    brushCount();
  };

  const brushCount = () => {
    const c = parBox.querySelector(".pc-count");
    if (c && answer) c.textContent = `${parcoords.el.dataset.selected} of ${answer.runs.length} runs selected`;
  };

  const renderLegend = () => {
    replace(
      legend,
      ...answer!.runs.map((r, i) =>
        h(
          "a",
          { class: `legend-item${visible(i) ? "" : " filtered-out"}`, href: runHash(r.key), dataset: { run: String(r.key) } },
          h("span", { class: "swatch", style: { background: seriesColour(i) } }),
          h("span", { class: "legend-name" }, runName(r)),
          h("span", { class: "muted small" }, runHost(r)),
          statusBadge(r.status, r.reason),
        ),
      ),
    );
  };

  const renderGroupChoices = () => {
    const a = answer!;
    const keys = a.config_diff.map((r) => `config.${r.key}`);
    if (view.group !== "" && view.group !== "path" && !keys.includes(view.group)) keys.unshift(view.group);
    replace(
      groupSelect,
      h("option", { value: "", selected: view.group === "" }, "none"),
      h("option", { value: "path", selected: view.group === "path" }, "path"),
      ...keys.map((k) => h("option", { value: k, selected: view.group === k }, k)),
    );
  };

  const renderMedia = () => {
    if (!answer || !media) return;
    const shown = answer.runs
      .map((r, i) => ({ r, i }))
      .filter(({ i }) => visible(i) && media![i])
      .map(({ r, i }) => ({ name: runName(r), colour: seriesColour(i), answer: media![i]! }));
    if (media.every((m) => m === null || m.keys.length === 0)) {
      replace(mediaBox);
      return;
    }
    replace(mediaBox, h("h2", {}, "Media"), mediaCompare(shown));
  };

  const loadMedia = async () => {
    const runs = answer!.runs;
    // A run whose images cannot be listed is left out of the panels, not an error of the page.
    media = await Promise.all(runs.map((r) => api.media(r.key).catch(() => null)));
    renderMedia();
  };

  const renderAll = () => {
    renderLegend();
    render();
    renderSummary();
    renderMedia();
    brushCount();
  };

  let brushTimer: ReturnType<typeof setTimeout> | undefined;
  function scheduleBrushRender(): void {
    brushCount();
    clearTimeout(brushTimer);
    brushTimer = setTimeout(renderAll, 80);
  }

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

  /** Every stored point of the compared keys, long format (run, key, step, value), raw. */
  async function exportCsv(): Promise<void> {
    if (!answer) return;
    const a = answer;
    exportButton.disabled = true;
    try {
      const rows: CsvCell[][] = [["run", "key", "step", "value"]];
      for (const r of a.runs) {
        if (a.keys.length === 0) break;
        const m = await api.metrics(r.key, { keys: a.keys.join(","), x: "step", raw: true });
        for (const s of m.series) s.steps.forEach((step, j) => rows.push([r.run_id, s.key, step, s.values[j] ?? null]));
      }
      downloadCsv(`compare-${a.runs.map((r) => r.run_id).join("_").slice(0, 80)}.csv`, toCsv(rows));
    } catch (e) {
      replace(status, message("error", `Could not export: ${(e as Error).message}`));
    } finally {
      exportButton.disabled = false;
    }
  }

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
      replace(status, ans.keys.length === 0 ? message("empty", "These runs share no metric key.") : null);
      if (first) {
        // The view in use goes into the URL (a copy reproduces it) and this browser's memory.
        saveView();
        renderGroupChoices();
        renderDiff();
        renderParcoords();
        renderAll();
        void loadMedia();
      } else render();
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
      clearTimeout(brushTimer);
      grid.destroy();
      parcoords.destroy();
    },
  };
}
