/**
 * Puts several series with their own x values onto one shared x axis, as uPlot wants its data:
 * a point a series lacks at some x is `undefined` (the line is drawn across it), while a stored
 * gap (NaN on the server, `null` on the wire) stays `null` and breaks the line.
 */

export interface XY {
  xs: ArrayLike<number>;
  ys: ArrayLike<number | null>;
}

export type Aligned = [number[], ...(number | null | undefined)[][]];

/** Aligns series whose x values are each sorted ascending. */
export function alignSeries(series: readonly XY[]): Aligned {
  if (series.length === 1) {
    const s = series[0]!;
    return [Array.from(s.xs), Array.from(s.ys)];
  }
  if (series.every((s) => sameXs(s.xs, series[0]!.xs))) {
    return [Array.from(series[0]!.xs), ...series.map((s) => Array.from(s.ys))] as Aligned;
  }
  const set = new Set<number>();
  for (const s of series) for (let i = 0; i < s.xs.length; i++) set.add(s.xs[i]!);
  const xs = Array.from(set).sort((a, b) => a - b);
  const index = new Map<number, number>();
  xs.forEach((x, i) => index.set(x, i));
  const out: Aligned = [xs];
  for (const s of series) {
    const ys: (number | null | undefined)[] = new Array(xs.length).fill(undefined);
    for (let i = 0; i < s.xs.length; i++) ys[index.get(s.xs[i]!)!] = s.ys[i]!;
    out.push(ys);
  }
  return out;
}

function sameXs(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
