import { describe, expect, it } from "vitest";
import type { Run } from "../../src/api";
import { tagFilter } from "../../src/pages/runs";
import { rawCell, runsCsvRows, userColumns } from "../../src/pages/runs_columns";

const run = (over: Partial<Run>): Run =>
  ({
    key: 1, run_id: "r1", remote: "gpu1", host: "node", dir: "d", path: "cv/a", alias: null, tags: [], notes: null,
    status: "finished", reason: null, created_at: 100.5, ended_at: 160.5, last_step: 10, points: 3, keys: [], key_count: 0,
    summary: {}, config: {}, log_bytes: 0, deleted: false, removed: false, trashed_at: null,
    remote_state: "live", remote_heard_at: null,
    ...over,
  }) as Run;

describe("runs table columns", () => {
  it("writes the filter of a tag, quoting odd names", () => {
    expect(tagFilter("best")).toBe("tag:best");
    expect(tagFilter("v1.2-rc_3")).toBe("tag:v1.2-rc_3");
    expect(tagFilter('my "tag"')).toBe('tag:"my \\"tag\\""');
    expect(tagFilter("a\\b")).toBe('tag:"a\\\\b"');
  });

  it("keeps raw values: numbers as numbers, objects as JSON", () => {
    expect(rawCell(0.1)).toBe(0.1);
    expect(rawCell("sgd")).toBe("sgd");
    expect(rawCell(true)).toBe("true");
    expect(rawCell({ a: 1 })).toBe('{"a":1}');
    expect(rawCell(undefined)).toBeNull();
  });

  it("makes the CSV rows of the shown columns", () => {
    const runs = [
      run({ key: 7, alias: "base", tags: ["a", "b"], summary: { acc: 0.9731 }, config: { optim: { lr: 0.03 } } }),
      run({ key: 8, host: null, summary: {}, config: { "optim.lr": 1e-4 } }),
    ];
    const rows = runsCsvRows(runs, userColumns(["summary.acc", "config.optim.lr"]));
    expect(rows).toEqual([
      ["key", "run_id", "alias", "remote", "tags", "summary.acc", "config.optim.lr"],
      [7, "r1", "base", "gpu1", "a b", 0.9731, 0.03],
      [8, "r1", null, "gpu1", "", null, 1e-4],
    ]);
  });
});
