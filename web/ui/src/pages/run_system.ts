/**
 * The System tab of a run: the CPU, memory, I/O and per-GPU use the agent sampled while the run
 * ran (`GET /api/runs/{run}/system`, from the run's `system.jsonl`), one group of charts per
 * heading ("Process", "GPU 2", …) against time since the run started. While the run runs it
 * refreshes every 10 s (the agent's sampling interval), and whenever the store changes.
 */
import { api, type RunDetail } from "../api";
import type { ChartSpec } from "../components/chart";
import { ChartGrid } from "../components/chartgrid";
import type { SystemAnswer } from "../generated/api";
import { code, h, message, replace } from "../lib/dom";
import { isLiveStatus } from "../lib/liveness";
import { systemGroups, type SystemChart } from "../lib/system_groups";
import { seriesColour } from "../lib/theme";
import { onStoreChanged } from "./page";

/** How often a running run's telemetry is asked for again. */
const REFRESH_MS = 10_000;

/** What the tab says when a run has no telemetry file. */
export const NO_TELEMETRY = "No system telemetry for this run: runs started with ";

export class RunSystem {
  readonly el: HTMLElement;
  private readonly status = h("div", { class: "system-status" });
  private readonly body = h("div", { class: "system-groups" });
  private readonly grids = new Map<string, { section: HTMLElement; grid: ChartGrid }>();
  private answer: SystemAnswer | null = null;
  private xRange: [number, number] | null = null;
  private loaded = false;
  private loading = false;
  private generation = 0;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly offChanged: () => void;
  private readonly onTheme = () => this.render(true);

  constructor(private detail: RunDetail) {
    this.el = h("div", { class: "tab-system", dataset: { state: "loading" } }, this.status, this.body);
    replace(this.status, message("loading", "Loading system telemetry…"));
    this.timer = setInterval(() => {
      if (isLiveStatus(this.detail.status)) this.refresh();
    }, REFRESH_MS);
    this.offChanged = onStoreChanged(() => this.refresh());
    window.addEventListener("runicorn:theme", this.onTheme);
  }

  /** Loads the data the first time the tab is shown, and again each time it is shown after. */
  show(): void {
    this.loaded = true;
    void this.load();
  }

  setDetail(d: RunDetail): void {
    this.detail = d;
  }

  /** Loads again if the tab has been shown and is on the page. */
  private refresh(): void {
    if (this.loaded && this.el.isConnected && !this.loading) void this.load();
  }

  private async load(): Promise<void> {
    const gen = ++this.generation;
    this.loading = true;
    try {
      const answer = await api.system(this.detail.key);
      if (gen !== this.generation) return;
      this.answer = answer;
      this.render(false);
    } catch (e) {
      if (gen !== this.generation) return;
      this.el.dataset.state = "error";
      replace(this.status, message("error", `Could not load the system telemetry: ${(e as Error).message}`));
    } finally {
      if (gen === this.generation) this.loading = false;
    }
  }

  private render(rebuild: boolean): void {
    const a = this.answer;
    if (!a) return;
    if (rebuild) for (const { grid } of this.grids.values()) grid.set([]);
    const groups = systemGroups(a);
    if (groups.length === 0) {
      this.clearGroups(new Set());
      this.el.dataset.state = "empty";
      replace(this.status, this.emptyState(a));
      return;
    }
    this.el.dataset.state = "charts";
    const facts = [
      `${a.samples.toLocaleString()} samples`,
      a.skipped > 0 ? `${a.skipped.toLocaleString()} unreadable lines skipped` : null,
      a.truncated ? "only the start of a very long file was read" : null,
    ].filter((x): x is string => x !== null);
    replace(
      this.status,
      a.note ? h("p", { class: "system-note", attrs: { role: "status" } }, a.note) : null,
      h("p", { class: "muted small system-facts" }, facts.join(" · ")),
    );
    const wanted = new Set(groups.map((g) => g.id));
    this.clearGroups(wanted);
    groups.forEach((g, i) => {
      let slot = this.grids.get(g.id);
      if (!slot) {
        const grid = new ChartGrid();
        const section = h("section", { class: "system-group", dataset: { group: g.id } }, h("h2", {}, g.heading), grid.el);
        slot = { section, grid };
        this.grids.set(g.id, slot);
      }
      if (this.body.children[i] !== slot.section) this.body.insertBefore(slot.section, this.body.children[i] ?? null);
      slot.grid.set(g.charts.map((c) => ({ key: `${g.id}:${c.id}`, spec: this.spec(c) })));
    });
  }

  /** Removes the groups not wanted any more. */
  private clearGroups(wanted: Set<string>): void {
    for (const [id, { section, grid }] of this.grids) {
      if (wanted.has(id)) continue;
      grid.destroy();
      section.remove();
      this.grids.delete(id);
    }
  }

  private emptyState(a: SystemAnswer): HTMLElement {
    if (a.source === "none" && a.listed) {
      return message("empty", "The system telemetry of this run could not be read: ", a.note ?? "");
    }
    return message(
      "empty",
      h("p", {}, NO_TELEMETRY, code("runicorn-agent run"), " record CPU, memory and GPU use every 10 s."),
      a.source === "file" && a.note ? h("p", { class: "small" }, a.note) : null,
    );
  }

  private spec(c: SystemChart): ChartSpec {
    return {
      title: c.title,
      series: c.lines.map((l, i) => ({ label: l.label, colour: seriesColour(i), xs: l.series.times, ys: l.series.values })),
      xMode: "relative",
      smoothing: 0,
      logY: false,
      legend: true,
      tooltip: true,
      xRange: this.xRange,
      onZoom: (min, max) => {
        this.xRange = [min, max];
      },
      onReset: () => {
        if (this.xRange === null) return;
        this.xRange = null;
        this.render(false);
      },
    };
  }

  destroy(): void {
    clearInterval(this.timer);
    this.offChanged();
    window.removeEventListener("runicorn:theme", this.onTheme);
    this.generation++;
    this.clearGroups(new Set());
  }
}
