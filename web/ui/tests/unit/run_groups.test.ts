import { describe, expect, it } from "vitest";
import { aggregate, groupRuns, groupValue } from "../../src/lib/run_groups";

const run = (path: string, config: unknown, status = "finished") => ({ path, remote: "gpu1", host: "h", status, config });

describe("run groups", () => {
  it("reads the grouped value", () => {
    const r = run("cv/a", { lr: 0.1, optim: { name: "sgd" } });
    expect(groupValue(r, "path")).toBe("cv/a");
    expect(groupValue(r, "config.lr")).toBe(0.1);
    expect(groupValue(r, "config.optim.name")).toBe("sgd");
    expect(groupValue(r, "config.nope")).toBeUndefined();
    expect(groupValue(r, "bogus")).toBeUndefined();
  });

  it("orders groups: numbers numerically, then text, then runs without the key", () => {
    const runs = [run("a", { lr: 10 }), run("b", {}), run("c", { lr: 9 }), run("d", { lr: "x" }), run("e", { lr: 10 })];
    const g = groupRuns(runs, "config.lr");
    expect(g.map((x) => x.label)).toEqual(["9", "10", "x", "(none)"]);
    expect(g[1]!.rows.map((r) => r.path)).toEqual(["a", "e"]);
    expect(groupRuns([run("", {}), run("p", {})], "path").map((x) => x.label)).toEqual(["p", "(none)"]);
  });

  it("aggregates the numbers of a column as a direct computation does", () => {
    const values = [0.5, "text", null, 1.5, undefined, NaN, 4];
    const s = aggregate(values);
    const nums = [0.5, 1.5, 4];
    const mean = nums.reduce((a, b) => a + b, 0) / nums.length;
    const std = Math.sqrt(nums.reduce((a, b) => a + (b - mean) ** 2, 0) / (nums.length - 1));
    expect(s.n).toBe(3);
    expect(s.mean).toBeCloseTo(mean, 12);
    expect(s.std).toBeCloseTo(std, 12);
    expect(s.min).toBe(0.5);
    expect(s.max).toBe(4);
    expect(aggregate(["a"]).n).toBe(0);
  });
});
