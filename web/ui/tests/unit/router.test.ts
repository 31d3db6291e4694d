import { describe, expect, it } from "vitest";
import { buildHash, compareHash, parseRefs, parseRoute, runHash, splitHash, withParams } from "../../src/router";

describe("URL state", () => {
  it("routes every page", () => {
    expect(parseRoute("").page).toBe("runs");
    expect(parseRoute("#/runs?q=x").page).toBe("runs");
    expect(parseRoute("#/trash").page).toBe("trash");
    expect(parseRoute("#/remotes").page).toBe("remotes");
    expect(parseRoute("#/fleet").page).toBe("fleet");
    const run = parseRoute("#/run/42?tab=logs");
    expect(run).toMatchObject({ page: "run", ref: "42" });
    expect(run.params.get("tab")).toBe("logs");
    expect(parseRoute("#/compare?runs=1,2,2,x,-3,5")).toMatchObject({ page: "compare", runs: ["1", "2", "x", "-3", "5"] });
    expect(parseRoute("#/run/a/b/c").page).toBe("not_found");
    expect(parseRoute("#/nope").page).toBe("not_found");
  });
  it("splits and decodes", () => {
    const { segments, params } = splitHash("#/run/7?q=a%20b&path=cv%2Fresnet");
    expect(segments).toEqual(["run", "7"]);
    expect(params.get("q")).toBe("a b");
    expect(params.get("path")).toBe("cv/resnet");
  });
  it("parses run reference lists", () => {
    expect(parseRefs(null)).toEqual([]);
    expect(parseRefs(" 3, 1 ,3,,gpu1/")).toEqual(["3", "1"]);
  });
  it("builds hashes that parse back", () => {
    const h = buildHash("runs", { q: "a&b=c", path: "cv/resnet50", status: "", offset: 0, order: null, sort: "summary.loss" });
    const r = parseRoute(h);
    expect(r.params.get("q")).toBe("a&b=c");
    expect(r.params.get("path")).toBe("cv/resnet50");
    expect(r.params.get("sort")).toBe("summary.loss");
    expect(r.params.has("status")).toBe(false);
    expect(r.params.get("offset")).toBe("0");
    expect(compareHash([4, 2])).toBe("#/compare?runs=4,2");
    expect(runHash(9)).toBe("#/run/9");
    expect(runHash(9, "logs")).toBe("#/run/9?tab=logs");
    expect(buildHash("remotes")).toBe("#/remotes");
  });
  it("changes params", () => {
    const p = new URLSearchParams("q=x&offset=50");
    expect(withParams(p, { offset: null, sort: "path" })).toEqual({ q: "x", sort: "path" });
  });
});
