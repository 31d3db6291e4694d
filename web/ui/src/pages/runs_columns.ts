/**
 * The columns of the runs table: the fixed ones (status, run, path, host, created, duration,
 * last step) and the user-chosen `summary.<key>` / `config.<key>` ones, each with its cell, its
 * sort key and its raw value (what "Export CSV" writes and group rows aggregate), and the CSV of
 * a list of runs as the table shows them.
 */
import type { Run } from "../api";
import { statusBadge } from "../components/badge";
import type { Column } from "../components/table";
import type { CsvCell } from "../lib/csv";
import { h } from "../lib/dom";
import { formatAgo, formatDuration, formatNumber, formatTime, formatValue, getPath } from "../lib/format";
import { runDurationSoFar } from "../lib/liveness";
import { runHash } from "../router";

/** The name a run is shown by. */
export function runName(r: Pick<Run, "alias" | "run_id">): string {
  return r.alias && r.alias.length > 0 ? r.alias : r.run_id;
}

/** `remote · host`, or whichever is known. */
export function runHost(r: Pick<Run, "remote" | "host">): string {
  return [r.remote, r.host].filter((x) => x).join(" · ") || "–";
}

/** A config or summary value as a CSV cell: numbers stay numbers, objects become JSON. */
export function rawCell(v: unknown): CsvCell {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  return JSON.stringify(v);
}

export interface ColumnHooks {
  /** A tag in the run cell was clicked. */
  onTag: (tag: string) => void;
  /** Extra nodes in the status cell (the remote's liveness). */
  statusExtra?: (r: Run) => Node | null;
}

/** The fixed columns. */
export function baseColumns(hooks: ColumnHooks): Column<Run>[] {
  return [
    {
      id: "status",
      label: "Status",
      sort: "status",
      cell: (r) => {
        const extra = hooks.statusExtra?.(r) ?? null;
        const badge = statusBadge(r.status, r.reason);
        return extra ? h("div", { class: "status-cell" }, badge, extra) : badge;
      },
      value: (r) => r.status,
    },
    {
      id: "name",
      label: "Run",
      sort: "alias",
      className: "col-name",
      cell: (r) =>
        h(
          "div",
          {},
          h("a", { href: runHash(r.key), class: "run-link" }, runName(r)),
          r.alias ? h("div", { class: "muted small" }, r.run_id) : null,
          r.removed ? h("span", { class: "tag warn", title: "Gone from its server; the hub keeps its data" }, "removed") : null,
          ...r.tags.map((t) => {
            const b = h("button", { type: "button", class: "tag tag-filter", title: `Show the runs tagged ${t}` }, t);
            b.addEventListener("click", (ev) => {
              ev.stopPropagation();
              hooks.onTag(t);
            });
            return b;
          }),
        ),
      value: (r) => runName(r),
    },
    { id: "path", label: "Path", sort: "path", cell: (r) => r.path || "–", value: (r) => r.path },
    { id: "host", label: "Host", sort: "host", cell: (r) => runHost(r), value: (r) => runHost(r) },
    {
      id: "created",
      label: "Created",
      sort: "created_at",
      cell: (r) => h("span", { title: formatTime(r.created_at) }, formatAgo(r.created_at)),
      value: (r) => r.created_at,
    },
    {
      id: "duration",
      label: "Duration",
      className: "num",
      numeric: true,
      cell: (r) => formatDuration(runDurationSoFar(r)),
      formatAggregate: formatDuration,
      value: (r) => runDurationSoFar(r),
    },
    {
      id: "last_step",
      label: "Last step",
      sort: "last_step",
      className: "num",
      numeric: true,
      cell: (r) => formatNumber(r.last_step),
      value: (r) => r.last_step,
    },
  ];
}

/** The user-chosen columns (`summary.<key>` or `config.<key>`). */
export function userColumns(ids: readonly string[]): Column<Run>[] {
  return ids.map((id) => {
    const [kind, ...rest] = id.split(".");
    const key = rest.join(".");
    const get = (r: Run) => getPath(kind === "summary" ? r.summary : r.config, key);
    return {
      id,
      label: key,
      sort: id,
      className: "num user-col",
      numeric: true,
      cell: (r: Run) => formatValue(get(r)),
      value: (r: Run) => rawCell(get(r)),
    };
  });
}

/**
 * The rows of the CSV of `runs` as the table shows them: the run's identity first (key, run_id,
 * alias, remote, tags), then every shown column by its id, with raw values (times in Unix
 * seconds, durations in seconds, numbers exactly as the API gave them).
 */
export function runsCsvRows(runs: readonly Run[], columns: readonly Column<Run>[]): CsvCell[][] {
  const shown = columns.filter((c) => c.value && c.id !== "name");
  const header: CsvCell[] = ["key", "run_id", "alias", "remote", "tags", ...shown.map((c) => (c.id === "created" ? "created_at" : c.id))];
  const rows: CsvCell[][] = [header];
  for (const r of runs) {
    rows.push([r.key, r.run_id, r.alias, r.remote, r.tags.join(" "), ...shown.map((c) => (c.id === "host" ? r.host : c.value!(r)))]);
  }
  return rows;
}
