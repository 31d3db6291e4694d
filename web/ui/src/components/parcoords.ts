/**
 * Parallel coordinates on canvas: one vertical axis per dimension (a config key or a metric),
 * one polyline per item (a run) through its values. Dragging along an axis brushes a range on it;
 * an item is selected when it lies inside the brush of every brushed axis (a click without a
 * drag clears that axis' brush). Numbers are scaled between their min and max, text values are
 * placed in sorted order; an item lacking a value on an axis draws no segment there and is never
 * inside a brush of that axis.
 *
 * Two canvases keep brushing cheap: the background holds every line in grey, drawn once per
 * `set`; a brush redraws only the foreground (the selected lines, one path per colour, and the
 * brush boxes) from positions computed once. `lastUpdateMs` is the cost of the last brush
 * update (selection and redraw), which the browser benchmark reads. The element carries
 * `data-selected` (how many items are selected) and each axis label `data-key`.
 */
import { h } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { cssVar } from "../lib/theme";

/** One dimension: a value per item (same order as the items). */
export interface ParAxis {
  key: string;
  label: string;
  values: readonly unknown[];
}

/** A brush on an axis: the range of its scaled position [lo, hi] within [0, 1] (0: bottom). */
export type Brush = [number, number];

const HEIGHT = 260;
const TOP = 28;
const BOTTOM = 22;
const SIDE = 48;
/** How far from an axis (px) a drag still brushes it. */
const GRAB = 14;

interface Scale {
  /** Scaled position (0..1) of each item, NaN when missing. */
  t: Float32Array;
  ticks: { t: number; text: string }[];
}

function scaleAxis(values: readonly unknown[]): Scale {
  const t = new Float32Array(values.length).fill(NaN);
  const nums: number[] = [];
  const texts = new Set<string>();
  for (const v of values) {
    if (typeof v === "number" && Number.isFinite(v)) nums.push(v);
    else if (v !== null && v !== undefined && typeof v !== "number") texts.add(typeof v === "string" ? v : JSON.stringify(v));
  }
  if (texts.size === 0) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of nums) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const span = max - min;
    values.forEach((v, i) => {
      if (typeof v === "number" && Number.isFinite(v)) t[i] = span > 0 ? (v - min) / span : 0.5;
    });
    const ticks = nums.length === 0 ? [] : span > 0 ? [{ t: 0, text: formatNumber(min) }, { t: 1, text: formatNumber(max) }] : [{ t: 0.5, text: formatNumber(min) }];
    return { t, ticks };
  }
  // Text (and numbers mixed with text): sorted categories, evenly spaced.
  const cats = [...new Set(values.filter((v) => v !== null && v !== undefined).map((v) => (typeof v === "string" ? v : JSON.stringify(v))))].sort();
  const pos = new Map(cats.map((c, i) => [c, cats.length > 1 ? i / (cats.length - 1) : 0.5]));
  values.forEach((v, i) => {
    if (v === null || v === undefined) return;
    t[i] = pos.get(typeof v === "string" ? v : JSON.stringify(v)) ?? NaN;
  });
  const step = Math.max(1, Math.ceil(cats.length / 12));
  return { t, ticks: cats.filter((_, i) => i % step === 0).map((c) => ({ t: pos.get(c)!, text: c })) };
}

export class ParCoords {
  readonly el: HTMLElement;
  /** Milliseconds of the last brush update (selection and foreground redraw). */
  lastUpdateMs = 0;
  private readonly back: HTMLCanvasElement;
  private readonly front: HTMLCanvasElement;
  private readonly labels: HTMLElement;
  private axes: ParAxis[] = [];
  private scales: Scale[] = [];
  private colours: string[] = [];
  private brushes = new Map<string, Brush>();
  private selected: Uint8Array = new Uint8Array(0);
  private width = 0;
  private drag: { axis: number; y0: number; moved: boolean } | null = null;
  private readonly resize: ResizeObserver;

  /** `onBrush` gets the selection (one flag per item) after each brush change. */
  constructor(private readonly onBrush: (selected: Uint8Array, brushes: Map<string, Brush>) => void) {
    this.back = h("canvas", { class: "pc-back" });
    this.front = h("canvas", { class: "pc-front" });
    this.labels = h("div", { class: "pc-labels" });
    this.el = h("div", { class: "parcoords", style: { height: `${HEIGHT}px` }, dataset: { selected: "0" } }, this.back, this.front, this.labels);
    this.front.addEventListener("pointerdown", (e) => this.down(e));
    this.front.addEventListener("pointermove", (e) => this.move(e));
    this.front.addEventListener("pointerup", (e) => this.up(e));
    this.resize = new ResizeObserver(() => {
      if (Math.abs(this.el.clientWidth - this.width) > 1) this.draw();
    });
    this.resize.observe(this.el);
  }

  /** Shows these items (their colours) on these axes; brushes on axes still shown are kept. */
  set(colours: string[], axes: ParAxis[], brushes?: Map<string, Brush>): void {
    this.colours = colours;
    this.axes = axes;
    this.scales = axes.map((a) => scaleAxis(a.values));
    const keys = new Set(axes.map((a) => a.key));
    const next = brushes ?? this.brushes;
    this.brushes = new Map([...next].filter(([k]) => keys.has(k)));
    this.select();
    this.draw();
  }

  /** Sets (or with null clears) the brush of the axis `key`, as a drag would. */
  setBrush(key: string, brush: Brush | null): void {
    const start = performance.now();
    if (brush) this.brushes.set(key, [Math.min(brush[0], brush[1]), Math.max(brush[0], brush[1])]);
    else this.brushes.delete(key);
    this.select();
    this.drawFront();
    this.lastUpdateMs = performance.now() - start;
    this.onBrush(this.selected, new Map(this.brushes));
  }

  /** One flag per item: 1 when inside every brush. */
  get selection(): Uint8Array {
    return this.selected;
  }

  destroy(): void {
    this.resize.disconnect();
    this.el.remove();
  }

  private axisX(i: number): number {
    const n = this.axes.length;
    if (n <= 1) return this.width / 2;
    return SIDE + (i * (this.width - 2 * SIDE)) / (n - 1);
  }

  private y(t: number): number {
    return TOP + (1 - t) * (HEIGHT - TOP - BOTTOM);
  }

  private tOf(y: number): number {
    return Math.min(1, Math.max(0, 1 - (y - TOP) / (HEIGHT - TOP - BOTTOM)));
  }

  private select(): void {
    const n = this.colours.length;
    const sel = new Uint8Array(n).fill(1);
    this.axes.forEach((a, j) => {
      const b = this.brushes.get(a.key);
      if (!b) return;
      const t = this.scales[j]!.t;
      for (let i = 0; i < n; i++) {
        const v = t[i]!;
        if (!(v >= b[0] && v <= b[1])) sel[i] = 0;
      }
    });
    this.selected = sel;
    let count = 0;
    for (let i = 0; i < n; i++) count += sel[i]!;
    this.el.dataset.selected = String(count);
  }

  private fit(c: HTMLCanvasElement): CanvasRenderingContext2D | null {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.width * dpr);
    const hgt = Math.round(HEIGHT * dpr);
    // Resizing reallocates the canvas: only when the size changed (not on every brush move).
    if (c.width !== w || c.height !== hgt) {
      c.width = w;
      c.height = hgt;
      c.style.width = `${this.width}px`;
      c.style.height = `${HEIGHT}px`;
    }
    const ctx = c.getContext("2d");
    ctx?.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  /** Traces every item's polyline whose flag passes `keep` into paths by colour, then strokes. */
  private lines(ctx: CanvasRenderingContext2D, keep: (i: number) => boolean, colour: (i: number) => string): void {
    const xs = this.axes.map((_, j) => this.axisX(j));
    const byColour = new Map<string, number[]>();
    for (let i = 0; i < this.colours.length; i++) {
      if (!keep(i)) continue;
      const c = colour(i);
      const list = byColour.get(c);
      if (list) list.push(i);
      else byColour.set(c, [i]);
    }
    for (const [c, items] of byColour) {
      ctx.beginPath();
      for (const i of items) {
        let pen = false;
        for (let j = 0; j < xs.length; j++) {
          const t = this.scales[j]!.t[i]!;
          if (Number.isNaN(t)) {
            pen = false;
            continue;
          }
          const y = this.y(t);
          if (pen) ctx.lineTo(xs[j]!, y);
          else ctx.moveTo(xs[j]!, y);
          pen = true;
        }
      }
      ctx.strokeStyle = c;
      ctx.stroke();
    }
  }

  private draw(): void {
    this.width = Math.max(300, this.el.clientWidth || 800);
    const ctx = this.fit(this.back);
    if (ctx) {
      ctx.clearRect(0, 0, this.width, HEIGHT);
      ctx.lineWidth = 1;
      this.lines(ctx, () => true, () => cssVar("--grid") || "rgba(128,128,128,0.25)");
      ctx.strokeStyle = cssVar("--muted") || "#888";
      ctx.beginPath();
      this.axes.forEach((_, j) => {
        const x = Math.round(this.axisX(j)) + 0.5;
        ctx.moveTo(x, TOP);
        ctx.lineTo(x, HEIGHT - BOTTOM);
      });
      ctx.stroke();
    }
    this.labels.replaceChildren(
      ...this.axes.flatMap((a, j) => {
        const x = this.axisX(j);
        return [
          h("div", { class: "pc-axis", title: a.key, style: { left: `${x}px`, top: "4px" }, dataset: { key: a.key } }, a.label),
          ...this.scales[j]!.ticks.map((tk) => h("div", { class: "pc-tick muted small", style: { left: `${x + 4}px`, top: `${this.y(tk.t) - 7}px` } }, tk.text)),
        ];
      }),
    );
    this.drawFront();
  }

  private drawFront(): void {
    const ctx = this.fit(this.front);
    if (!ctx) return;
    ctx.clearRect(0, 0, this.width, HEIGHT);
    ctx.lineWidth = 1;
    this.lines(ctx, (i) => this.selected[i] === 1, (i) => this.colours[i]!);
    ctx.fillStyle = "rgba(120, 140, 255, 0.18)";
    ctx.strokeStyle = "rgba(90, 110, 230, 0.9)";
    this.axes.forEach((a, j) => {
      const b = this.brushes.get(a.key);
      if (!b) return;
      const x = this.axisX(j);
      const y0 = this.y(b[1]);
      const y1 = this.y(b[0]);
      ctx.fillRect(x - 8, y0, 16, y1 - y0);
      ctx.strokeRect(x - 8 + 0.5, y0 + 0.5, 16, y1 - y0);
    });
  }

  private axisAt(x: number): number {
    let best = -1;
    let dist = GRAB;
    this.axes.forEach((_, j) => {
      const d = Math.abs(this.axisX(j) - x);
      if (d <= dist) {
        dist = d;
        best = j;
      }
    });
    return best;
  }

  private point(e: PointerEvent): { x: number; y: number } {
    const r = this.front.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  private down(e: PointerEvent): void {
    const p = this.point(e);
    const axis = this.axisAt(p.x);
    if (axis < 0) return;
    this.front.setPointerCapture?.(e.pointerId);
    this.drag = { axis, y0: p.y, moved: false };
    e.preventDefault();
  }

  private move(e: PointerEvent): void {
    const d = this.drag;
    const p = this.point(e);
    this.front.style.cursor = d || this.axisAt(p.x) >= 0 ? "ns-resize" : "";
    if (!d) return;
    if (Math.abs(p.y - d.y0) < 3 && !d.moved) return;
    d.moved = true;
    this.setBrush(this.axes[d.axis]!.key, [this.tOf(d.y0), this.tOf(p.y)]);
  }

  private up(e: PointerEvent): void {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    this.front.releasePointerCapture?.(e.pointerId);
    if (!d.moved) this.setBrush(this.axes[d.axis]!.key, null);
  }
}
