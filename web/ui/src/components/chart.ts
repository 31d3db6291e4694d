/**
 * One metric chart on a uPlot canvas. uPlot draws straight to a canvas from typed columns, so a
 * chart of many thousands of points per series stays fast to draw, pan and zoom (it is ~50 KB and
 * needs no framework). The chart draws each series raw (faint) and EMA-smoothed on top, with a
 * linear or log y axis and x as step, wall-clock time or time since the start. Dragging selects
 * an x range and calls `onZoom` (the page fetches that range at a higher resolution); a double
 * click calls `onReset`. The element carries `data-points` (points drawn) and `data-rendered`.
 *
 * A series may carry a band (a group's min–max or ±std around its mean), drawn as a filled area
 * behind its line. With `tooltip`, a box beside the cursor lists every series' value at the
 * cursor's x (the stored value, and the smoothed one after `~` when smoothing); charts share the
 * cursor, so every chart of a page shows its values at that x.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { alignSeries, type XY } from "../lib/align";
import { h } from "../lib/dom";
import { ema } from "../lib/ema";
import { formatNumber } from "../lib/format";
import { cssVar } from "../lib/theme";

export type XMode = "step" | "time" | "relative";

export interface ChartSeries {
  label: string;
  colour: string;
  xs: ArrayLike<number>;
  ys: ArrayLike<number | null>;
  /** A filled band behind the line, on the same x values (smoothed like the line). */
  band?: { lo: ArrayLike<number | null>; hi: ArrayLike<number | null> };
}

export interface ChartSpec {
  title: string;
  series: ChartSeries[];
  xMode: XMode;
  smoothing: number;
  logY: boolean;
  legend: boolean;
  /** A box beside the cursor with every series' value at its x. */
  tooltip?: boolean;
  /** The zoomed x range, or null for all data. */
  xRange: [number, number] | null;
  onZoom?: (min: number, max: number) => void;
  onReset?: () => void;
}

/** Called by every chart after it has drawn (the benchmark and tests wait on it). */
export type DrawListener = (chart: MetricChart) => void;

function relLabel(s: number): string {
  const a = Math.abs(s);
  if (a === 0) return "0s";
  if (a < 1) return `${Number(s.toPrecision(2))}s`;
  if (a < 60) return `${Number(s.toFixed(a < 10 ? 2 : 1))}s`;
  if (a < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
}

/** The colour at 30 % opacity (`#rrggbb` or `hsl(…)`), for the raw line behind the smoothed one. */
export function faint(colour: string): string {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
  if (hex) return `rgba(${parseInt(hex[1]!, 16)}, ${parseInt(hex[2]!, 16)}, ${parseInt(hex[3]!, 16)}, 0.3)`;
  const hsl = /^hsl\((.*)\)$/i.exec(colour);
  if (hsl) return `hsla(${hsl[1]}, 0.3)`;
  return colour;
}

/** Builds uPlot's aligned columns: per input series a raw column and, when smoothing, an EMA one. */
export function chartColumns(spec: Pick<ChartSpec, "series" | "smoothing" | "logY">): {
  data: uPlot.AlignedData;
  points: number;
} {
  const cols: XY[] = [];
  let points = 0;
  const positive = (ys: ArrayLike<number | null>) => (spec.logY ? Array.from(ys, (v) => (v !== null && v > 0 ? v : null)) : ys);
  const smooth = (ys: ArrayLike<number | null>) => (spec.smoothing > 0 ? (ema(Array.from(ys), spec.smoothing) as (number | null)[]) : ys);
  for (const s of spec.series) {
    const ys: ArrayLike<number | null> = positive(s.ys);
    if (s.band) {
      cols.push({ xs: s.xs, ys: smooth(positive(s.band.lo)) });
      cols.push({ xs: s.xs, ys: smooth(positive(s.band.hi)) });
    }
    for (let i = 0; i < ys.length; i++) if (ys[i] !== null && ys[i] !== undefined) points++;
    cols.push({ xs: s.xs, ys });
    if (spec.smoothing > 0) cols.push({ xs: s.xs, ys: ema(Array.from(ys), spec.smoothing) as (number | null)[] });
  }
  if (cols.length === 0) return { data: [[]], points: 0 };
  return { data: alignSeries(cols) as unknown as uPlot.AlignedData, points };
}

export class MetricChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly body: HTMLElement;
  private readonly resize: ResizeObserver;
  private spec: ChartSpec;

  constructor(
    spec: ChartSpec,
    private readonly onDrawn?: DrawListener,
  ) {
    this.spec = spec;
    this.body = h("div", { class: "chart-body" });
    this.el = h(
      "figure",
      { class: "chart", dataset: { key: spec.title, points: "0", rendered: "0" } },
      h("figcaption", { class: "chart-title" }, spec.title),
      this.body,
    );
    this.resize = new ResizeObserver(() => {
      const w = this.width();
      if (this.plot && w > 0 && Math.abs(this.plot.width - w) > 1) this.plot.setSize({ width: w, height: this.height() });
    });
    this.resize.observe(this.body);
  }

  /** The uPlot instance (for tests and the benchmark). */
  get uplot(): uPlot | null {
    return this.plot;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.body.clientWidth || 480));
  }

  private height(): number {
    return 240;
  }

  /** Creates the canvas; call once the element is in the document (it needs a width). */
  mount(): void {
    this.build();
  }

  /** Replaces the data (new fetch, live points); keeps the zoom when `spec.xRange` is set. */
  update(spec: ChartSpec): void {
    const sameShape =
      this.plot !== null &&
      spec.series.length === this.spec.series.length &&
      spec.smoothing > 0 === this.spec.smoothing > 0 &&
      spec.logY === this.spec.logY &&
      spec.xMode === this.spec.xMode &&
      spec.legend === this.spec.legend &&
      spec.tooltip === this.spec.tooltip &&
      spec.series.every(
        (s, i) => s.colour === this.spec.series[i]!.colour && s.label === this.spec.series[i]!.label && !s.band === !this.spec.series[i]!.band,
      );
    this.spec = spec;
    if (!sameShape || !this.plot) {
      this.build();
      return;
    }
    const { data, points } = chartColumns(spec);
    this.el.dataset.points = String(points);
    if (spec.xRange) {
      this.plot.setData(data, false);
      this.plot.setScale("x", { min: spec.xRange[0], max: spec.xRange[1] });
    } else {
      this.plot.setData(data, true);
    }
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.el.remove();
  }

  private build(): void {
    this.plot?.destroy();
    this.el.dataset.rendered = "0";
    const spec = this.spec;
    const { data, points } = chartColumns(spec);
    this.el.dataset.points = String(points);
    const fg = cssVar("--muted") || "#666";
    const grid = cssVar("--grid") || "rgba(128,128,128,0.15)";
    const smoothing = spec.smoothing > 0;
    const series: uPlot.Series[] = [
      spec.xMode === "relative"
        ? { label: "time", value: (_u, v) => (v === null ? "–" : relLabel(v)) }
        : { label: spec.xMode === "time" ? "time" : "step" },
    ];
    const bands: uPlot.Band[] = [];
    // Per input series, the uPlot index of its raw line (the smoothed one follows it).
    const shown: number[] = [];
    for (const s of spec.series) {
      if (s.band) {
        const band = { stroke: "transparent", width: 0, spanGaps: false, points: { show: false } };
        series.push({ ...band, label: `${s.label} (low)` }, { ...band, label: `${s.label} (high)` });
        bands.push({ series: [series.length - 1, series.length - 2], fill: faint(s.colour) });
      }
      shown.push(series.length);
      series.push({
        label: smoothing ? `${s.label} (raw)` : s.label,
        stroke: smoothing ? faint(s.colour) : s.colour,
        width: 1,
        spanGaps: false,
        points: { show: false },
        value: (_u, v) => formatNumber(v),
        show: true,
      });
      if (smoothing) {
        series.push({
          label: s.label,
          stroke: s.colour,
          // 1 px lines are drawn as hairlines; a fractional width (1.5) made a 20-run compare
          // pan at a third of the frame rate in Chromium's software canvas (bench/browser).
          width: 1,
          spanGaps: false,
          points: { show: false },
          value: (_u, v) => formatNumber(v),
        });
      }
    }
    const axis = (extra: Partial<uPlot.Axis> = {}): uPlot.Axis => ({
      stroke: fg,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      ...extra,
    });
    const xRange = spec.xRange;
    const tip = spec.tooltip ? h("div", { class: "chart-tip", hidden: true }) : null;
    const opts: uPlot.Options = {
      width: this.width(),
      height: this.height(),
      series,
      bands,
      scales: {
        x: { time: spec.xMode === "time" },
        y: spec.logY ? { distr: 3 } : {},
      },
      axes: [
        axis(spec.xMode === "relative" ? { values: (_u, splits) => splits.map(relLabel) } : {}),
        axis({ size: 60, values: (_u, splits) => splits.map((v) => formatNumber(v)) }),
      ],
      legend: { show: spec.legend, live: true },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        sync: { key: "runicorn-x" },
        bind: {
          dblclick: () => () => {
            this.spec.onReset?.();
            return null;
          },
        },
      },
      hooks: {
        setSelect: [
          (u) => {
            const sel = u.select;
            if (sel.width < 4) return;
            const min = u.posToVal(sel.left, "x");
            const max = u.posToVal(sel.left + sel.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (max > min) {
              u.setScale("x", { min, max });
              this.spec.onZoom?.(min, max);
            }
          },
        ],
        setCursor: tip ? [(u) => this.showTip(u, tip, shown)] : [],
        draw: [
          () => {
            this.el.dataset.rendered = "1";
            this.onDrawn?.(this);
          },
        ],
      },
    };
    this.plot = new uPlot(opts, data, this.body);
    if (tip) this.plot.over.appendChild(tip);
    if (xRange) this.plot.setScale("x", { min: xRange[0], max: xRange[1] });
  }

  /** Fills and places the cursor's value box: the x, then each series' value (nearest point). */
  private showTip(u: uPlot, tip: HTMLElement, shown: number[]): void {
    const idx = u.cursor.idx;
    const left = u.cursor.left ?? -1;
    if (idx === null || idx === undefined || left < 0) {
      tip.hidden = true;
      return;
    }
    const x = u.data[0][idx]!;
    const xText = this.spec.xMode === "relative" ? relLabel(x) : this.spec.xMode === "time" ? new Date(x * 1000).toLocaleString() : formatNumber(x);
    const smoothed = this.spec.smoothing > 0;
    const rows = this.spec.series.map((s, i) => {
      const v = nearValue(u.data[shown[i]!] as (number | null | undefined)[] | undefined, idx);
      const sv = smoothed ? nearValue(u.data[shown[i]! + 1] as (number | null | undefined)[] | undefined, idx) : null;
      return h(
        "div",
        { class: "tip-row", dataset: { label: s.label, value: v === null ? "" : String(v) } },
        h("span", { class: "swatch", style: { background: s.colour } }),
        h("span", { class: "tip-label" }, s.label),
        h("span", { class: "num" }, v === null ? "–" : formatNumber(v)),
        smoothed ? h("span", { class: "num muted", title: "smoothed" }, sv === null ? "" : `~${formatNumber(sv)}`) : null,
      );
    });
    tip.replaceChildren(h("div", { class: "tip-x muted" }, `${this.spec.xMode === "step" ? "step" : "time"} ${xText}`), ...rows);
    tip.hidden = false;
    tip.dataset.x = String(x);
    const w = u.over.clientWidth;
    tip.style.left = left > w / 2 ? "" : `${left + 12}px`;
    tip.style.right = left > w / 2 ? `${w - left + 12}px` : "";
  }
}

/** The value at `idx`, or the nearest defined one within 64 columns (aligned series have holes). */
function nearValue(col: (number | null | undefined)[] | undefined, idx: number): number | null {
  if (!col) return null;
  for (let d = 0; d <= 64; d++) {
    const a = col[idx - d];
    if (a !== undefined && idx - d >= 0) return a;
    const b = col[idx + d];
    if (b !== undefined && idx + d < col.length) return b;
  }
  return null;
}
