import { describe, expect, it } from "vitest";
import { ema } from "../../src/lib/ema";

describe("ema", () => {
  it("returns the values unchanged at 0", () => {
    expect(ema([1, 2, 3], 0)).toEqual([1, 2, 3]);
  });
  it("is debiased: a constant series stays constant from the first point", () => {
    const out = ema([5, 5, 5, 5], 0.9);
    for (const v of out) expect(v).toBeCloseTo(5, 10);
  });
  it("smooths toward the running average", () => {
    const out = ema([0, 10], 0.5) as number[];
    expect(out[0]).toBeCloseTo(0);
    // (0.5*0*0.5 + 0.5*10) / (1 - 0.25) = 5 / 0.75
    expect(out[1]).toBeCloseTo(5 / 0.75);
  });
  it("keeps gaps as gaps without resetting the average", () => {
    const out = ema([1, null, 3, undefined, NaN], 0.5);
    expect(out[1]).toBeNull();
    expect(out[3]).toBeUndefined();
    expect(out[4]).toBeNull();
    expect(out[2]).toBeCloseTo((0.25 * 1 + 0.5 * 3) / 0.75);
  });
  it("clamps a weight out of range", () => {
    expect(ema([1, 2], -1)).toEqual([1, 2]);
    const out = ema([1, 2], 5) as number[];
    expect(out[0]).toBeCloseTo(1);
    expect(out[1]).toBeGreaterThan(1);
    expect(out[1]).toBeLessThan(2);
  });
});
