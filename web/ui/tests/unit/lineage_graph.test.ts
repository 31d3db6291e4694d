import { describe, expect, it } from "vitest";
import type { LineageNode } from "../../src/api";
import { layoutLineage, nodeHref, nodeLabel } from "../../src/components/lineage_graph";
import { artifactRef, parseArtifactRef } from "../../src/pages/artifacts";
import { artifactsHash, lineageHash, parseRoute } from "../../src/router";

const run = (id: string, key: number | null): LineageNode => ({
  id,
  kind: "run",
  run: { key, run_id: `r-${id}`, remote: "gpu1", dir: `runs/${id}`, host: "box", status: key === null ? null : "finished" },
  version: null,
});
const ver = (id: string, version: number, aliases: string[] = []): LineageNode => ({
  id,
  kind: "version",
  run: null,
  version: { remote: "gpu1", host: "box", type: "model", name: "m", version, aliases, size: 2048, created_at: null, removed: false },
});

describe("lineage layout", () => {
  it("puts producers left of their versions and users right of them", () => {
    // p produced v1 and v2; c used v1 and produced d.
    const place = layoutLineage({
      root: "v1",
      nodes: [ver("v1", 1), run("p", 1), run("c", 2), ver("v2", 2), ver("d", 1)],
      edges: [
        { from: "p", to: "v1", kind: "produced" },
        { from: "p", to: "v2", kind: "produced" },
        { from: "v1", to: "c", kind: "used" },
        { from: "c", to: "d", kind: "produced" },
      ],
    });
    const layer = (id: string) => place.get(id)!.layer;
    expect(layer("p")).toBe(0);
    expect(layer("v1")).toBe(1);
    expect(layer("v2")).toBe(1);
    expect(layer("c")).toBe(2);
    expect(layer("d")).toBe(3);
    // Two nodes in one column get two rows.
    expect(new Set([place.get("v1")!.row, place.get("v2")!.row])).toEqual(new Set([0, 1]));
    // Every edge points right.
    for (const [from, to] of [["p", "v1"], ["v1", "c"], ["c", "d"]] as const) expect(layer(to)).toBeGreaterThan(layer(from));
  });

  it("places nodes the root does not reach, and ignores edges to unknown nodes", () => {
    const place = layoutLineage({ root: "a", nodes: [run("a", 1), run("b", 2)], edges: [{ from: "a", to: "zz", kind: "produced" }] });
    expect(place.size).toBe(2);
    expect(place.get("a")!.layer).toBe(0);
  });
});

describe("lineage nodes", () => {
  it("link runs to their page and versions to the Artifacts page; a run the hub lacks has no link", () => {
    expect(nodeHref(run("p", 7))).toBe("#/run/7?tab=artifacts");
    expect(nodeHref(run("x", null))).toBeNull();
    const href = nodeHref(ver("v", 3))!;
    const route = parseRoute(href);
    expect(route.page).toBe("artifacts");
    expect(parseArtifactRef(route.params.get("artifact"))).toEqual({ remote: "gpu1", type: "model", name: "m" });
    expect(route.params.get("version")).toBe("3");
  });

  it("label versions with aliases and size, runs with remote, host and status", () => {
    expect(nodeLabel(ver("v", 2, ["best", "latest"]))).toEqual(["m:v2 (best, latest)", "model · gpu1 · 2.0 KiB"]);
    expect(nodeLabel(run("p", 1))).toEqual(["r-p", "gpu1 · box · finished"]);
    expect(nodeLabel(run("x", null))[1]).toContain("not in the hub");
  });
});

describe("artifact references in the URL", () => {
  it("round-trip REMOTE/TYPE/NAME and refuse other shapes", () => {
    expect(parseArtifactRef(artifactRef({ remote: "a", type: "dataset", name: "d-1" }))).toEqual({ remote: "a", type: "dataset", name: "d-1" });
    expect(parseArtifactRef("a/b")).toBeNull();
    expect(parseArtifactRef("a//c")).toBeNull();
    expect(parseArtifactRef(null)).toBeNull();
  });

  it("build and parse the artifacts and lineage routes", () => {
    expect(artifactsHash()).toBe("#/artifacts");
    expect(artifactsHash({ type: "model" })).toBe("#/artifacts?type=model");
    const r = parseRoute(lineageHash({ artifact: "gpu1/model/m", version: 2 }));
    expect(r.page).toBe("lineage");
    expect(r.params.get("artifact")).toBe("gpu1/model/m");
    expect(parseRoute(lineageHash({ run: 5 })).params.get("run")).toBe("5");
  });
});
