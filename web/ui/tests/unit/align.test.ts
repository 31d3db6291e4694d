import { describe, expect, it } from "vitest";
import { alignSeries } from "../../src/lib/align";

describe("alignSeries", () => {
  it("passes one series through", () => {
    expect(alignSeries([{ xs: [1, 2], ys: [3, null] }])).toEqual([[1, 2], [3, null]]);
  });
  it("shares identical x columns", () => {
    expect(alignSeries([{ xs: [1, 2], ys: [3, 4] }, { xs: [1, 2], ys: [5, 6] }])).toEqual([[1, 2], [3, 4], [5, 6]]);
  });
  it("unions x values: missing points undefined, stored gaps null", () => {
    const out = alignSeries([
      { xs: [0, 2, 4], ys: [1, null, 3] },
      { xs: [1, 2], ys: [7, 8] },
    ]);
    expect(out[0]).toEqual([0, 1, 2, 4]);
    expect(out[1]).toEqual([1, undefined, null, 3]);
    expect(out[2]).toEqual([undefined, 7, 8, undefined]);
  });
});
