import { describe, expect, it } from "vitest";
import { ApiError, runUrl } from "../../src/api";
import { compareHash, parseRefs, parseRoute, runHash } from "../../src/router";

describe("run references in URLs", () => {
  it("takes a key, a run id or a remote's run id on a run's page", () => {
    expect(parseRoute("#/run/42")).toMatchObject({ page: "run", ref: "42" });
    expect(parseRoute("#/run/20261202_150537_a4f9e9?tab=logs")).toMatchObject({
      page: "run",
      ref: "20261202_150537_a4f9e9",
    });
    // REMOTE/RUN_ID as two segments, or encoded as one.
    expect(parseRoute("#/run/gpu1/20261202_150537_a4f9e9")).toMatchObject({ page: "run", ref: "gpu1/20261202_150537_a4f9e9" });
    expect(parseRoute("#/run/gpu1%2F20261202_150537_a4f9e9")).toMatchObject({ page: "run", ref: "gpu1/20261202_150537_a4f9e9" });
    expect(parseRoute("#/run/gpu-1.a%20b/r%231").params.get("tab")).toBe(null);
    expect(parseRoute("#/run/gpu-1.a%20b/r%231")).toMatchObject({ ref: "gpu-1.a b/r#1" });
  });

  it("refuses what can name no run", () => {
    for (const hash of ["#/run", "#/run/", "#/run/a/b/c", "#/run/a%2Fb/c", "#/run/%2Fx", "#/run/x%2F", "#/run/a%0Ab"]) {
      expect(parseRoute(hash).page, hash).toBe("not_found");
    }
  });

  it("builds run pages that parse back to the same reference", () => {
    expect(runHash(7)).toBe("#/run/7");
    expect(runHash("gpu1/r1", "logs")).toBe("#/run/gpu1/r1?tab=logs");
    for (const ref of ["7", "r1", "gpu1/r1", "gpu 1/r#1?x", "ünï/cödé"]) {
      const route = parseRoute(runHash(ref, "files"));
      expect(route).toMatchObject({ page: "run", ref });
      expect(route.params.get("tab")).toBe("files");
    }
  });

  it("compares runs named by any reference, each once", () => {
    expect(parseRoute("#/compare?runs=3,gpu1%2Fr1,r2,3,gpu1/r1")).toMatchObject({ page: "compare", runs: ["3", "gpu1/r1", "r2"] });
    const hash = compareHash([4, "gpu2/shared", "r9"]);
    expect(parseRoute(hash)).toMatchObject({ page: "compare", runs: ["4", "gpu2/shared", "r9"] });
    expect(parseRefs("a, ,/b,c/")).toEqual(["a"]);
  });

  it("asks the API with the reference as one path segment", () => {
    expect(runUrl(42)).toBe("/api/runs/42");
    expect(runUrl("gpu1/20261202_150537_a4f9e9", "/metrics")).toBe("/api/runs/gpu1%2F20261202_150537_a4f9e9/metrics");
    expect(runUrl("a b#c")).toBe("/api/runs/a%20b%23c");
  });

  it("keeps the candidates of an ambiguous reference", () => {
    const e = new ApiError(409, "conflict", "names 2 runs", [
      { key: 3, remote: "gpu1", run_id: "r" },
      { key: 9, remote: "gpu2", run_id: "r" },
    ]);
    expect(e.candidates.map((c) => c.key)).toEqual([3, 9]);
    expect(new ApiError(404, "not_found", "x").candidates).toEqual([]);
  });
});
