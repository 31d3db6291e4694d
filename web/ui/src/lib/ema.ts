/**
 * Exponential moving average of a metric series, as TensorBoard draws it: debiased so the
 * first points are not pulled toward zero, and gaps (null/undefined) kept as gaps without
 * resetting the average.
 */

export type Value = number | null | undefined;

/** Smooths `values` with weight `alpha` in [0, 1): 0 returns the values unchanged. */
export function ema(values: readonly Value[], alpha: number): Value[] {
  const w = Number.isFinite(alpha) ? Math.min(Math.max(alpha, 0), 0.999) : 0;
  if (w === 0) return values.slice();
  const out: Value[] = new Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = v === undefined ? undefined : null;
      continue;
    }
    last = last * w + (1 - w) * v;
    count++;
    const debias = 1 - Math.pow(w, count);
    out[i] = last / debias;
  }
  return out;
}
