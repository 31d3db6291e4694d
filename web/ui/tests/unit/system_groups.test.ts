import { describe, expect, it } from "vitest";
import type { SystemSeries } from "../../src/generated/api";
import { systemGroups } from "../../src/lib/system_groups";

const series = (key: string, n = 3): SystemSeries => ({
  key,
  times: Array.from({ length: n }, (_, i) => i * 10),
  values: Array.from({ length: n }, (_, i) => i),
  downsampled: false,
});

describe("systemGroups", () => {
  it("puts the process keys first, then each GPU in index order, then unknown keys", () => {
    const keys = [
      "sys/cpu_percent",
      "sys/gpu.2/mem_used_mib",
      "sys/gpu.2/run_mem_mib",
      "sys/gpu.2/util_percent",
      "sys/gpu.10/temp_c",
      "sys/io_read_mib",
      "sys/io_write_mib",
      "sys/rss_mib",
      "sys/new_thing",
    ].map((k) => series(k));
    const groups = systemGroups({ keys, gpus: [10, 2] });
    expect(groups.map((g) => g.heading)).toEqual(["Process", "GPU 2", "GPU 10", "Other"]);
    expect(groups[0]!.charts.map((c) => c.id)).toEqual(["cpu", "memory", "io"]);
    expect(groups[0]!.charts[2]!.lines.map((l) => l.label)).toEqual(["read", "written"]);
    expect(groups[1]!.charts.map((c) => c.id)).toEqual(["util", "memory"]);
    expect(groups[1]!.charts[1]!.lines.map((l) => l.key)).toEqual(["sys/gpu.2/mem_used_mib", "sys/gpu.2/run_mem_mib"]);
    expect(groups[2]!.charts.map((c) => c.id)).toEqual(["temp"]);
    expect(groups[3]!.charts.map((c) => c.title)).toEqual(["sys/new_thing"]);
  });

  it("leaves out empty series and has no groups for an empty answer", () => {
    expect(systemGroups({ keys: [], gpus: [] })).toEqual([]);
    const groups = systemGroups({ keys: [series("sys/cpu_percent", 0), series("sys/rss_mib")], gpus: [] });
    expect(groups).toHaveLength(1);
    expect(groups[0]!.charts.map((c) => c.id)).toEqual(["memory"]);
  });
});
