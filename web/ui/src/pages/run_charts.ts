/**
 * The Charts tab of a run: one chart per metric key with the shared controls; drag-to-zoom
 * refetches the range at a higher resolution, a double click goes back to the whole run, and
 * live points are appended while the run runs. "Export CSV" downloads every stored point of
 * every key (long format: run, key, step, value; raw, numbers as the API gives them).
 */
import { api, type RunDetail, type Series } from "../api";
import type { ChartSpec } from "../components/chart";
import { chartControls, loadSettings, type ChartSettings } from "../components/chartcontrols";
import { ChartGrid } from "../components/chartgrid";
import { downloadCsv, toCsv, type CsvCell } from "../lib/csv";
import { h, message, replace } from "../lib/dom";
import { seriesColour } from "../lib/theme";

/** Points asked per series: enough for a wide chart (min and max per bucket). */
const POINTS = 2000;
/** Charts shown at first, and added by each "show more": the API pages keys by this many. */
const KEYS_PER_PAGE = 200;

export interface LiveSeries {
  key: string;
  steps: number[];
  times: (number | null)[];
  values: (number | null)[];
}

export class RunCharts {
  readonly el: HTMLElement;
  private readonly grid = new ChartGrid();
  private readonly status = h("div");
  private settings: ChartSettings = loadSettings();
  private series = new Map<string, Series>();
  private xRange: [number, number] | null = null;
  private loaded = false;
  private generation = 0;
  /** How many of the run's keys (by name) have charts: a run may log very many. */
  private keysWanted = KEYS_PER_PAGE;
  private readonly more = h("div");
  private readonly onTheme = () => this.render(true);
  private readonly exportButton = h("button", { type: "button", class: "export-csv" }, "Export CSV");

  constructor(private detail: RunDetail) {
    this.exportButton.addEventListener("click", () => void this.exportCsv());
    this.el = h(
      "div",
      { class: "tab-charts" },
      chartControls(this.settings, (s) => {
        const xChanged = s.x !== this.settings.x;
        this.settings = s;
        if (xChanged) {
          this.xRange = null;
          void this.load();
        } else this.render(false);
      }, [this.exportButton]),
      this.status,
      this.grid.el,
      this.more,
    );
    window.addEventListener("runicorn:theme", this.onTheme);
  }

  /** Loads the data the first time the tab is shown. */
  show(): void {
    if (!this.loaded) {
      this.loaded = true;
      void this.load();
    }
  }

  setDetail(d: RunDetail): void {
    this.detail = d;
  }

  /** The x origin of relative time: the run's start. */
  private t0(): number {
    if (this.detail.created_at !== null) return this.detail.created_at;
    let min = Infinity;
    for (const s of this.series.values()) for (const t of s.times) if (t !== null && t < min) min = t;
    return Number.isFinite(min) ? min : 0;
  }

  /** Every stored point of every key, raw, as CSV (keys paged like the charts). */
  private async exportCsv(): Promise<void> {
    const button = this.exportButton;
    button.disabled = true;
    try {
      const rows: CsvCell[][] = [["run", "key", "step", "value"]];
      let keyOffset: number | null = 0;
      while (keyOffset !== null) {
        const ans = await api.metrics(this.detail.key, { x: "step", raw: true, key_offset: keyOffset, key_limit: KEYS_PER_PAGE });
        for (const s of ans.series) s.steps.forEach((step, j) => rows.push([this.detail.run_id, s.key, step, s.values[j] ?? null]));
        keyOffset = ans.next_key_offset;
      }
      downloadCsv(`${this.detail.run_id}-metrics.csv`, toCsv(rows));
    } catch (e) {
      replace(this.status, message("error", `Could not export: ${(e as Error).message}`));
    } finally {
      button.disabled = false;
    }
  }

  private async load(): Promise<void> {
    const gen = ++this.generation;
    if (this.detail.metrics.length === 0 && this.series.size === 0) {
      replace(this.status, message("empty", "This run has logged no metrics yet."));
      this.grid.set([]);
      return;
    }
    const x = this.settings.x === "step" ? "step" : "time";
    const shift = this.settings.x === "relative" ? this.t0() : 0;
    try {
      const series: Series[] = [];
      let keyOffset: number | null = 0;
      let keyCount = 0;
      while (keyOffset !== null && keyOffset < this.keysWanted) {
        const ans = await api.metrics(this.detail.key, {
          x,
          points: POINTS,
          from: this.xRange ? this.xRange[0] + shift : undefined,
          to: this.xRange ? this.xRange[1] + shift : undefined,
          key_offset: keyOffset,
          key_limit: KEYS_PER_PAGE,
        });
        if (gen !== this.generation) return;
        series.push(...ans.series);
        keyCount = ans.key_count;
        keyOffset = ans.next_key_offset;
      }
      this.series = new Map(series.map((s) => [s.key, s]));
      replace(this.status, series.length === 0 ? message("empty", "This run has logged no metrics yet.") : null);
      this.showMore(keyOffset === null ? 0 : keyCount - keyOffset, keyCount);
      this.render(false);
    } catch (e) {
      if (gen !== this.generation) return;
      replace(this.status, message("error", `Could not load metrics: ${(e as Error).message}`));
    }
  }

  /** Says how many keys have no chart yet, with a button for the next page of them. */
  private showMore(left: number, total: number): void {
    if (left <= 0) {
      replace(this.more);
      return;
    }
    const next = Math.min(left, KEYS_PER_PAGE);
    replace(
      this.more,
      message(
        "empty",
        `Charts for ${total - left} of ${total} metrics. `,
        h(
          "button",
          {
            type: "button",
            class: "btn charts-more",
            on: {
              click: () => {
                this.keysWanted += KEYS_PER_PAGE;
                void this.load();
              },
            },
          },
          `Show ${next} more`,
        ),
      ),
    );
  }

  private loadTimer: ReturnType<typeof setTimeout> | undefined;
  private scheduleLoad(): void {
    clearTimeout(this.loadTimer);
    this.loadTimer = setTimeout(() => void this.load(), 0);
  }

  /** Appends live points (those past each series' last step). */
  appendLive(live: LiveSeries[]): void {
    if (!this.loaded || this.xRange) return;
    let changed = false;
    for (const l of live) {
      let s = this.series.get(l.key);
      if (!s) {
        s = { key: l.key, total: 0, downsampled: false, steps: [], times: [], values: [] };
        this.series.set(l.key, s);
      }
      const last = s.steps.length ? s.steps[s.steps.length - 1]! : -Infinity;
      for (let i = 0; i < l.steps.length; i++) {
        if (l.steps[i]! <= last) continue;
        s.steps.push(l.steps[i]!);
        s.times.push(l.times[i] ?? null);
        s.values.push(l.values[i] ?? null);
        s.total++;
        changed = true;
      }
    }
    if (changed) {
      replace(this.status);
      this.render(false);
    }
  }

  private spec(s: Series, colour: string): ChartSpec {
    const mode = this.settings.x;
    let xs: number[];
    let ys: (number | null)[];
    if (mode === "step") {
      xs = s.steps;
      ys = s.values;
    } else {
      const shift = mode === "relative" ? this.t0() : 0;
      xs = [];
      ys = [];
      s.times.forEach((t, i) => {
        if (t === null) return;
        xs.push(t - shift);
        ys.push(s.values[i] ?? null);
      });
    }
    return {
      title: s.key,
      series: [{ label: s.key, colour, xs, ys }],
      xMode: mode,
      smoothing: this.settings.smoothing,
      logY: this.settings.logY,
      legend: true,
      xRange: this.xRange,
      // Charts share the cursor and selection, so every chart reports the same zoom: one load.
      onZoom: (min, max) => {
        this.xRange = [min, max];
        this.scheduleLoad();
      },
      onReset: () => {
        if (this.xRange === null) return;
        this.xRange = null;
        this.scheduleLoad();
      },
    };
  }

  private render(rebuild: boolean): void {
    if (rebuild) this.grid.set([]);
    const keys = [...this.series.keys()].sort((a, b) => a.localeCompare(b));
    this.grid.set(keys.map((k, i) => ({ key: k, spec: this.spec(this.series.get(k)!, seriesColour(i)) })));
  }

  destroy(): void {
    window.removeEventListener("runicorn:theme", this.onTheme);
    this.grid.destroy();
  }
}
