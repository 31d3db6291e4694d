/**
 * A grid of metric charts, one per key, kept across data updates. It tells when every chart has
 * drawn the data it was last given: the element gets `data-rendered="1"`, and
 * `window.__runicornRendered` is set to the `performance.now()` of that moment (the browser
 * benchmark and tests wait on it). `window.__runicornCharts` lists the uPlot instances.
 */
import { h } from "../lib/dom";
import { MetricChart, type ChartSpec } from "./chart";

declare global {
  interface Window {
    __runicornRendered?: number;
    __runicornCharts?: unknown[];
  }
}

export class ChartGrid {
  readonly el = h("div", { class: "chart-grid", dataset: { rendered: "0" } });
  private readonly charts = new Map<string, MetricChart>();
  private pending = new Set<string>();

  /** Shows exactly these charts, in this order. */
  set(specs: { key: string; spec: ChartSpec }[]): void {
    this.el.dataset.rendered = "0";
    this.pending = new Set(specs.map((s) => s.key));
    const wanted = new Set(this.pending);
    for (const [k, c] of this.charts) {
      if (!wanted.has(k)) {
        c.destroy();
        this.charts.delete(k);
      }
    }
    specs.forEach(({ key, spec }, i) => {
      let c = this.charts.get(key);
      if (!c) {
        c = new MetricChart(spec, () => this.drawn(key));
        this.charts.set(key, c);
        this.el.insertBefore(c.el, this.el.children[i] ?? null);
        c.mount();
      } else {
        if (this.el.children[i] !== c.el) this.el.insertBefore(c.el, this.el.children[i] ?? null);
        c.update(spec);
      }
    });
    window.__runicornCharts = [...this.charts.values()].map((c) => c.uplot);
    if (specs.length === 0) this.markRendered();
  }

  /** Number of charts. */
  get size(): number {
    return this.charts.size;
  }

  destroy(): void {
    for (const c of this.charts.values()) c.destroy();
    this.charts.clear();
    window.__runicornCharts = [];
  }

  private drawn(key: string): void {
    if (!this.pending.delete(key) || this.pending.size > 0) return;
    this.markRendered();
  }

  private markRendered(): void {
    this.el.dataset.rendered = "1";
    window.__runicornRendered = performance.now();
  }
}
