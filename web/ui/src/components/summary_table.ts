/**
 * The summary table of a comparison: per run, the last, min and max of each metric over all
 * its points (from `/api/compare`'s `stats`), the best run of each metric in bold (lowest or
 * highest by `lowerIsBetter`, the rule shown under the table). Grouped, each group has a row of
 * aggregates before its runs: the mean ± sample std of its runs' last values (and how many
 * runs), the smallest min and the largest max. Cells carry `data-run` (or `data-group`),
 * `data-key`, `data-stat` and `data-value` (the exact number).
 */
import type { SeriesStatsDto } from "../api";
import { BEST_RULE, lowerIsBetter } from "../lib/compare_view";
import { h } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { groupStats } from "../lib/group_stats";

export interface SummaryRun {
  /** Index in the comparison (its colour). */
  index: number;
  key: number;
  name: string;
  colour: string;
  href: string;
}

export interface SummaryGroup {
  label: string;
  colour: string;
  /** Run indexes. */
  members: number[];
}

export interface SummaryInput {
  runs: SummaryRun[];
  keys: string[];
  stat: (run: number, key: string) => SeriesStatsDto | undefined;
  groups: SummaryGroup[] | null;
  groupBy: string;
}

type Stat = "last" | "min" | "max";
const STATS: Stat[] = ["last", "min", "max"];

interface Cell {
  value: number | null;
  text: string;
}

export function summaryTable(input: SummaryInput): HTMLElement {
  const { runs, keys, stat, groups } = input;
  const byIndex = new Map(runs.map((r) => [r.index, r]));
  const runCell = (r: SummaryRun, key: string, s: Stat): Cell => {
    const v = stat(r.key, key)?.[s] ?? null;
    return { value: v, text: formatNumber(v) };
  };
  const groupCell = (g: SummaryGroup, key: string, s: Stat): Cell => {
    const members = g.members.flatMap((i) => (byIndex.has(i) ? [byIndex.get(i)!] : []));
    const values = members.map((r) => stat(r.key, key)?.[s] ?? null).filter((v): v is number => v !== null);
    const st = groupStats(values);
    if (st.n === 0) return { value: null, text: "–" };
    if (s === "min") return { value: st.min, text: formatNumber(st.min) };
    if (s === "max") return { value: st.max, text: formatNumber(st.max) };
    return { value: st.mean, text: `${formatNumber(st.mean)} ± ${formatNumber(st.std)} (n=${st.n})` };
  };
  // Best per key: among groups when grouped, else among runs; on `last` and on the extreme
  // that counts (min when lower is better, max otherwise).
  const best = new Map<string, number>();
  const contenders: { id: string; cell: (key: string, s: Stat) => Cell }[] = groups
    ? groups.map((g) => ({ id: `g:${g.label}`, cell: (k, s) => groupCell(g, k, s) }))
    : runs.map((r) => ({ id: `r:${r.key}`, cell: (k, s) => runCell(r, k, s) }));
  for (const key of keys) {
    const low = lowerIsBetter(key);
    for (const s of ["last", low ? "min" : "max"] as Stat[]) {
      let bestValue: number | null = null;
      for (const c of contenders) {
        const v = c.cell(key, s).value;
        if (v === null) continue;
        if (bestValue === null || (low ? v < bestValue : v > bestValue)) bestValue = v;
      }
      if (bestValue !== null) best.set(`${key}\u0000${s}`, bestValue);
    }
  }
  const td = (cell: Cell, key: string, s: Stat, grouped: boolean, data: Record<string, string>) => {
    const isBest = cell.value !== null && best.get(`${key}\u0000${s}`) === cell.value && (groups !== null) === grouped;
    return h(
      "td",
      { class: `num${isBest ? " best" : ""}`, dataset: { ...data, key, stat: s, value: cell.value === null ? "" : String(cell.value) }, title: isBest ? "best" : "" },
      cell.text,
    );
  };
  const runRow = (r: SummaryRun, member: boolean) =>
    h(
      "tr",
      { class: member ? "member-row" : "", dataset: { run: String(r.key) } },
      h("td", { class: "name" }, h("span", { class: "swatch", style: { background: r.colour } }), h("a", { href: r.href }, r.name)),
      ...keys.flatMap((k) => STATS.map((s) => td(runCell(r, k, s), k, s, false, { run: String(r.key) }))),
    );
  const body = h("tbody");
  if (groups) {
    for (const g of groups) {
      body.appendChild(
        h(
          "tr",
          { class: "group-row", dataset: { group: g.label } },
          h("td", { class: "name" }, h("span", { class: "swatch", style: { background: g.colour } }), h("strong", {}, `${input.groupBy} = ${g.label}`), h("span", { class: "muted small" }, ` ${g.members.length} runs`)),
          ...keys.flatMap((k) => STATS.map((s) => td(groupCell(g, k, s), k, s, true, { group: g.label }))),
        ),
      );
      for (const i of g.members) {
        const r = byIndex.get(i);
        if (r) body.appendChild(runRow(r, true));
      }
    }
  } else {
    for (const r of runs) body.appendChild(runRow(r, false));
  }
  if (runs.length === 0) body.appendChild(h("tr", {}, h("td", { class: "muted", colSpan: 1 + keys.length * 3 }, "No run inside the brushes.")));
  return h(
    "div",
    { class: "summary-box" },
    h(
      "div",
      { class: "table-box" },
      h(
        "table",
        { class: "data summary-table" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", { rowSpan: 2 }, groups ? "Group / run" : "Run"), ...keys.map((k) => h("th", { colSpan: 3, class: "metric-head", title: lowerIsBetter(k) ? "lower is better" : "higher is better" }, `${k} ${lowerIsBetter(k) ? "↓" : "↑"}`))),
          h("tr", {}, ...keys.flatMap(() => STATS.map((s) => h("th", { class: "num" }, s)))),
        ),
        body,
      ),
    ),
    h("p", { class: "muted small best-rule" }, BEST_RULE, groups ? " Group rows: mean ± std of the runs' last values, smallest min, largest max." : ""),
  );
}
