import { describe, expect, it } from "vitest";
import { groupBy, groupLabel, groupSeries, groupStats, interpolateOnto } from "../../src/lib/group_stats";

/** The textbook two-pass computation the Welford update must agree with. */
function direct(values: number[]) {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

describe("groupStats", () => {
  it("matches a direct computation on random sets", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let t = 0; t < 200; t++) {
      const len = 1 + Math.floor(rand() * 50);
      const values = Array.from({ length: len }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 6));
      const got = groupStats(values);
      const want = direct(values);
      expect(got.n).toBe(want.n);
      expect(got.min).toBe(want.min);
      expect(got.max).toBe(want.max);
      expect(got.mean).toBeCloseTo(want.mean, 9);
      expect(Math.abs(got.std - want.std)).toBeLessThanOrEqual(1e-9 * Math.max(1, want.std));
    }
  });
  it("leaves out non-finite values", () => {
    const got = groupStats([1, NaN, 3, Infinity, null as unknown as number]);
    expect(got).toEqual({ n: 2, mean: 2, std: Math.SQRT2, min: 1, max: 3 });
  });
  it("gives std 0 for one value and NaN for none", () => {
    expect(groupStats([5])).toEqual({ n: 1, mean: 5, std: 0, min: 5, max: 5 });
    const empty = groupStats([]);
    expect(empty.n).toBe(0);
    expect(empty.mean).toBeNaN();
  });
});

describe("groupBy / groupLabel", () => {
  it("keeps first-appearance order", () => {
    const g = groupBy(["b1", "a1", "b2"], (s) => s[0]!);
    expect([...g.keys()]).toEqual(["b", "a"]);
    expect(g.get("b")).toEqual(["b1", "b2"]);
  });
  it("labels missing and non-string values", () => {
    expect(groupLabel(undefined)).toBe("(none)");
    expect(groupLabel(0.1)).toBe("0.1");
    expect(groupLabel("sgd")).toBe("sgd");
  });
});

describe("groupSeries", () => {
  it("computes per-x statistics over the members present", () => {
    const g = groupSeries([
      { xs: [0, 1, 2], ys: [1, 2, 3] },
      { xs: [0, 1, 2], ys: [3, null, 5] },
      { xs: [0, 2], ys: [5, 7] },
    ]);
    expect(g.xs).toEqual([0, 1, 2]);
    expect(g.n).toEqual([3, 1, 3]);
    expect(g.mean).toEqual([3, 2, 5]);
    expect(g.min).toEqual([1, 2, 3]);
    expect(g.max).toEqual([5, 2, 7]);
    expect(g.lo[0]).toBeCloseTo(1, 12);
    expect(g.hi[0]).toBeCloseTo(5, 12);
    expect(g.lo[1]).toBe(2);
  });
  it("matches groupStats at every x", () => {
    const members = [0, 1, 2, 3].map((k) => ({ xs: [0, 1, 2, 3, 4], ys: [0, 1, 2, 3, 4].map((x) => Math.sin(x + k) * (k + 1)) }));
    const g = groupSeries(members);
    g.xs.forEach((_, i) => {
      const s = groupStats(members.map((m) => m.ys[i]!));
      expect(g.mean[i]).toBeCloseTo(s.mean, 12);
      expect(g.hi[i]! - g.mean[i]!).toBeCloseTo(s.std, 12);
    });
  });
});

describe("interpolateOnto", () => {
  it("interpolates inside the range, leaves the outside undefined, keeps gaps", () => {
    const out = interpolateOnto({ xs: [10, 20, 30, 40], ys: [0, 10, null, 4] }, [0, 10, 15, 20, 25, 40, 50]);
    expect(out).toEqual([undefined, 0, 5, 10, null, 4, undefined]);
  });
  it("lets members sampled at different steps all count in a group", () => {
    const g = groupSeries(
      [
        { xs: [0, 10], ys: [0, 10] },
        { xs: [0, 5, 10], ys: [2, 7, 12] },
      ],
      { interpolate: true },
    );
    expect(g.xs).toEqual([0, 5, 10]);
    expect(g.n).toEqual([2, 2, 2]);
    expect(g.mean).toEqual([1, 6, 11]);
  });
});
