/**
 * How the System tab lays out a run's telemetry (`GET /api/runs/{run}/system`): the `sys/` keys
 * grouped under headings ("Process", then "GPU N" for each GPU seen, then "Other" for keys this
 * dashboard does not know), each group a few charts of one or more keys. Pure, so it is tested
 * without a browser.
 */
import type { SystemAnswer, SystemSeries } from "../generated/api";

/** One line of a chart: a key and what the legend calls it. */
export interface SystemLine {
  key: string;
  label: string;
  series: SystemSeries;
}

/** One chart: a title and its lines (only keys the answer has). */
export interface SystemChart {
  id: string;
  title: string;
  lines: SystemLine[];
}

/** A heading and its charts. */
export interface SystemGroup {
  id: string;
  heading: string;
  charts: SystemChart[];
}

type Layout = { id: string; title: string; lines: [string, string][] }[];

const PROCESS: Layout = [
  { id: "cpu", title: "CPU (% of one core)", lines: [["sys/cpu_percent", "CPU %"]] },
  { id: "memory", title: "Memory (RSS, MiB)", lines: [["sys/rss_mib", "RSS MiB"]] },
  { id: "io", title: "I/O so far (MiB)", lines: [["sys/io_read_mib", "read"], ["sys/io_write_mib", "written"]] },
  { id: "procs", title: "Processes and threads", lines: [["sys/procs", "processes"], ["sys/threads", "threads"]] },
];

function gpuLayout(n: number): Layout {
  const k = (name: string) => `sys/gpu.${n}/${name}`;
  return [
    { id: "util", title: "Utilisation (%)", lines: [[k("util_percent"), "util %"]] },
    {
      id: "memory",
      title: "Memory (MiB)",
      lines: [[k("mem_used_mib"), "used (all processes)"], [k("run_mem_mib"), "this run"], [k("mem_total_mib"), "total"]],
    },
    { id: "temp", title: "Temperature (°C)", lines: [[k("temp_c"), "°C"]] },
    { id: "power", title: "Power (W)", lines: [[k("power_w"), "W"]] },
  ];
}

/** The groups of an answer, in order, leaving out charts (and groups) with no data. */
export function systemGroups(answer: Pick<SystemAnswer, "keys" | "gpus">): SystemGroup[] {
  const byKey = new Map(answer.keys.map((s) => [s.key, s]));
  const used = new Set<string>();
  const build = (layout: Layout): SystemChart[] =>
    layout
      .map(({ id, title, lines }) => ({
        id,
        title,
        lines: lines.flatMap(([key, label]) => {
          const series = byKey.get(key);
          if (!series || series.values.length === 0) return [];
          used.add(key);
          return [{ key, label, series }];
        }),
      }))
      .filter((c) => c.lines.length > 0);
  const groups: SystemGroup[] = [{ id: "process", heading: "Process", charts: build(PROCESS) }];
  for (const n of [...answer.gpus].sort((a, b) => a - b)) groups.push({ id: `gpu.${n}`, heading: `GPU ${n}`, charts: build(gpuLayout(n)) });
  const other = answer.keys
    .filter((s) => !used.has(s.key) && s.values.length > 0)
    .map((s) => ({ id: s.key, title: s.key, lines: [{ key: s.key, label: s.key.replace(/^sys\//, ""), series: s }] }));
  groups.push({ id: "other", heading: "Other", charts: other });
  return groups.filter((g) => g.charts.length > 0);
}
