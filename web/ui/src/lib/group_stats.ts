/**
 * Aggregates over groups of runs: the statistics of a set of numbers (count, mean, sample
 * standard deviation, min, max), grouping of items by a key, and the per-step mean with its
 * min–max and ±std bands of a group of metric series (what the compare page draws for a group).
 *
 * Values that are not finite numbers (NaN, ±Infinity, null/undefined at runtime) are left out
 * of every statistic; `n` counts only the values used. An empty set has `n = 0` and NaN for
 * every other field.
 */

import { alignSeries, type XY } from "./align";

export interface GroupStats {
  /** How many finite values went into the statistics. */
  n: number;
  mean: number;
  /** Sample standard deviation (divides by n − 1); 0 for a single value. */
  std: number;
  min: number;
  max: number;
}

/** Count, mean, sample std, min and max of the finite values in `values` (Welford's update). */
export function groupStats(values: readonly number[]): GroupStats {
  let n = 0;
  let mean = 0;
  let m2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    n++;
    const d = v - mean;
    mean += d / n;
    m2 += d * (v - mean);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (n === 0) return { n: 0, mean: NaN, std: NaN, min: NaN, max: NaN };
  return { n, mean, std: n > 1 ? Math.sqrt(m2 / (n - 1)) : 0, min, max };
}

/** Groups `items` by `key`, keeping groups in order of first appearance and items in input order. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** The label of an item's group for a group-by value that may be missing or not a string. */
export function groupLabel(value: unknown): string {
  if (value === undefined || value === null) return "(none)";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A group of series reduced to one curve per statistic over their union of x values. */
export interface GroupSeries {
  xs: number[];
  mean: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
  /** mean − std and mean + std (std as in {@link groupStats}). */
  lo: (number | null)[];
  hi: (number | null)[];
  /** How many members had a finite value at each x. */
  n: number[];
}

/**
 * A series' values at `xs` (sorted ascending): its own value where it has a point there, the
 * straight line between its neighbouring points inside its x range, `undefined` outside that
 * range, and `null` next to a stored gap (a null value is never bridged).
 */
export function interpolateOnto(s: XY, xs: readonly number[]): (number | null | undefined)[] {
  const out: (number | null | undefined)[] = new Array(xs.length).fill(undefined);
  const n = s.xs.length;
  if (n === 0) return out;
  let j = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    if (x < s.xs[0]! || x > s.xs[n - 1]!) continue;
    while (j < n - 1 && s.xs[j + 1]! <= x) j++;
    const x0 = s.xs[j]!;
    const y0 = s.ys[j] ?? null;
    if (x === x0) {
      out[i] = y0;
      continue;
    }
    const x1 = s.xs[j + 1]!;
    const y1 = s.ys[j + 1] ?? null;
    out[i] = y0 === null || y1 === null ? null : y0 + ((y1 - y0) * (x - x0)) / (x1 - x0);
  }
  return out;
}

/**
 * Reduces member series to per-x statistics: at each x of the union of the members' x values,
 * the statistics of the members that have a finite value there. An x where none does is `null`
 * in every curve (a gap). With `interpolate`, each member is first placed on that union of x
 * values by {@link interpolateOnto}, so members sampled at different steps (downsampled
 * series) all count between their first and last point.
 */
export function groupSeries(members: readonly XY[], opts: { interpolate?: boolean } = {}): GroupSeries {
  if (members.length === 0) return { xs: [], mean: [], min: [], max: [], lo: [], hi: [], n: [] };
  let xs: number[];
  let cols: (number | null | undefined)[][];
  if (opts.interpolate) {
    const set = new Set<number>();
    for (const m of members) for (let i = 0; i < m.xs.length; i++) set.add(m.xs[i]!);
    xs = Array.from(set).sort((a, b) => a - b);
    cols = members.map((m) => interpolateOnto(m, xs));
  } else {
    const aligned = alignSeries(members);
    xs = aligned[0];
    cols = aligned.slice(1) as (number | null | undefined)[][];
  }
  const len = xs.length;
  const out: GroupSeries = {
    xs,
    mean: new Array(len),
    min: new Array(len),
    max: new Array(len),
    lo: new Array(len),
    hi: new Array(len),
    n: new Array(len),
  };
  for (let i = 0; i < len; i++) {
    let n = 0;
    let mean = 0;
    let m2 = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const col of cols) {
      const v = col[i];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      n++;
      const d = v - mean;
      mean += d / n;
      m2 += d * (v - mean);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    out.n[i] = n;
    if (n === 0) {
      out.mean[i] = out.min[i] = out.max[i] = out.lo[i] = out.hi[i] = null;
      continue;
    }
    const std = n > 1 ? Math.sqrt(m2 / (n - 1)) : 0;
    out.mean[i] = mean;
    out.min[i] = min;
    out.max[i] = max;
    out.lo[i] = mean - std;
    out.hi[i] = mean + std;
  }
  return out;
}
