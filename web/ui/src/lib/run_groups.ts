/**
 * Grouping of the runs table: which value a run is grouped by (`path`, `remote`, `host`,
 * `status` or any `config.<key>`), the groups in a stable order (numbers numerically, text as
 * text, runs without the key last), and the aggregates of a numeric column over a group
 * (count, mean, min, max, std; lib/group_stats.ts).
 */
import { getPath } from "./format";
import { groupBy, groupLabel, groupStats, type GroupStats } from "./group_stats";

/** What the table can be grouped by besides `config.<key>`. */
export const GROUP_FIELDS = ["path", "remote", "host", "status"] as const;

export interface Groupable {
  path: string;
  remote: string;
  host: string | null;
  status: string;
  config: unknown;
}

/** The value of `run` that `by` names (undefined when the run lacks it). */
export function groupValue(run: Groupable, by: string): unknown {
  if (by.startsWith("config.")) return getPath(run.config, by.slice("config.".length));
  switch (by) {
    case "path":
      return run.path;
    case "remote":
      return run.remote;
    case "host":
      return run.host;
    case "status":
      return run.status;
    default:
      return undefined;
  }
}

export interface RunGroup<T> {
  /** The group's label (`(none)` for runs without the value). */
  label: string;
  rows: T[];
}

const NONE = groupLabel(undefined);

/** Groups `runs` by `by`, keeping each group's runs in their order (the table's sort). */
export function groupRuns<T extends Groupable>(runs: readonly T[], by: string): RunGroup<T>[] {
  const numeric = new Map<string, number>();
  const groups = groupBy(runs, (r) => {
    const v = groupValue(r, by);
    const label = groupLabel(v === "" ? undefined : v);
    if (typeof v === "number") numeric.set(label, v);
    return label;
  });
  const out = [...groups].map(([label, rows]) => ({ label, rows }));
  out.sort((a, b) => {
    if (a.label === NONE || b.label === NONE) return a.label === NONE ? (b.label === NONE ? 0 : 1) : -1;
    const x = numeric.get(a.label);
    const y = numeric.get(b.label);
    if (x !== undefined && y !== undefined) return x - y;
    if (x !== undefined || y !== undefined) return x !== undefined ? -1 : 1;
    return a.label < b.label ? -1 : a.label > b.label ? 1 : 0;
  });
  return out;
}

/** The statistics of the numbers among `values` (text, null and non-finite values left out). */
export function aggregate(values: readonly unknown[]): GroupStats {
  return groupStats(values.filter((v): v is number => typeof v === "number"));
}
