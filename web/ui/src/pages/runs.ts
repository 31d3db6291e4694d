/**
 * The runs table (`#/runs`) and the recycle bin (`#/trash`): path tree, the filter box (the
 * filter language, with key completion and errors marked), sortable columns (server-side),
 * user-chosen summary/config columns, grouping with aggregates, paging, selection with Compare,
 * Export (a bundle download) and Move to recycle bin / Restore, Import (a bundle file, see
 * components/bundle_import.ts), Export CSV, keyboard shortcuts, and in the recycle bin
 * permanent delete and "Empty recycle bin". The view (filter, sort, columns, grouping) lives in
 * the URL and is remembered per browser (lib/view_state.ts). Ungrouped, everything is fetched a
 * page at a time, so 100,000 runs cost the same as 10.
 */
import { api, ApiError, bundlesApi, RUN_STATUSES, type Columns, type Remote, type Run, type RunsQuery } from "../api";
import { pickBundle } from "../components/bundle_import";
import { filterBox } from "../components/filter_box";
import { dataTable, type Column, type SortState, type TableGroup } from "../components/table";
import { pathTree } from "../components/tree";
import { downloadCsv, toCsv } from "../lib/csv";
import { code, debounce, h, message, replace, store } from "../lib/dom";
import { formatNumber, formatValue } from "../lib/format";
import { registerShortcuts } from "../lib/keyboard";
import { livenessBadge, refreshLiveness } from "../lib/liveness";
import { aggregate, GROUP_FIELDS, groupRuns } from "../lib/run_groups";
import { joinList, rememberView, resolveView, splitList } from "../lib/view_state";
import { buildHash, compareHash, replaceHash, runHash } from "../router";
import { onStoreChanged, type Page } from "./page";
import { baseColumns, runsCsvRows, userColumns } from "./runs_columns";

export { runHost, runName } from "./runs_columns";

const PAGE_SIZE = 50;
/** Page sizes offered under the table (the `limit` of the view). */
const PAGE_SIZES = [10, 25, 50, 100, 200];
/** Runs fetched per request when all matching runs are needed (grouping, CSV). */
const BULK_PAGE = 1000;
/** At most this many runs are grouped (the note under the table says when there are more). */
const GROUP_LIMIT = 5000;
/** Grouped, store changes reload the table at most this often. */
const GROUPED_REFRESH_MS = 5000;
/** The column choice before views were remembered whole (still read once). */
const OLD_COLUMNS_KEY = "runicorn.columns";
const VIEW_KEYS = ["q", "path", "status", "remote", "sort", "order", "cols", "group", "limit"] as const;

/** A page size the API takes (`limit` 1–1,000). */
function validLimit(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 1000;
}

function oldColumns(): string[] {
  try {
    const v = JSON.parse(store.get(OLD_COLUMNS_KEY) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** The filter that shows the runs carrying `tag`. */
export function tagFilter(tag: string): string {
  return /^[A-Za-z0-9_.\-]+$/.test(tag) ? `tag:${tag}` : `tag:"${tag.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function runsPage(params: URLSearchParams, trash: boolean): Page {
  const pageName = trash ? "trash" : "runs";
  const view = resolveView(pageName, params, VIEW_KEYS, ["cols"]);
  const state = {
    q: view.q ?? "",
    path: view.path ?? "",
    status: view.status ?? "",
    remote: view.remote ?? "",
    sort: view.sort ?? "created_at",
    order: (view.order === "asc" ? "asc" : "desc") as "asc" | "desc",
    group: view.group ?? "",
    limit: validLimit(Number(view.limit)) ? Number(view.limit) : PAGE_SIZE,
    offset: Math.max(0, Number(params.get("offset") ?? 0) || 0),
  };
  let extraColumns = view.cols !== undefined ? splitList(view.cols) : oldColumns();
  const selected = new Set<number>();
  const openPaths = new Set<string>();
  const collapsed = new Set<string>();
  let columns: Columns & { metrics?: string[] } = { summary: [], config: [], metrics: [] };
  let generation = 0;
  let destroyed = false;
  let lastRuns: Run[] = [];
  let lastTotal = 0;
  /** The key of the run the keyboard cursor (j/k) is on. */
  let cursorKey: number | null = null;
  /** Where the cursor goes once the page j/k turned to arrives. */
  let cursorEdge: "first" | "last" | null = null;

  const filter = filterBox({
    value: state.q,
    placeholder: 'Filter: words, or config.lr = 0.1 and summary.val_acc > 0.9 and tag:best',
    onChange: (q) => {
      state.q = q;
      state.offset = 0;
      void load();
    },
  });
  const statusSel = h(
    "select",
    { attrs: { "aria-label": "Status" }, class: "status-filter" },
    h("option", { value: "" }, "All statuses"),
    ...RUN_STATUSES.map((s) => h("option", { value: s, selected: state.status === s }, s)),
  );
  const remoteSel = h("select", { attrs: { "aria-label": "Remote" }, class: "remote-filter" }, h("option", { value: "" }, "All remotes"));
  const groupSel = h("select", { attrs: { "aria-label": "Group by" }, class: "group-by" });
  const compareBtn = h("button", { type: "button", class: "btn primary compare-btn" }, "Compare");
  const trashBtn = h("button", { type: "button", class: "btn danger trash-btn" }, trash ? "Restore" : "Move to recycle bin");
  const emptyBtn = h("button", { type: "button", class: "btn danger empty-bin-btn" }, "Empty recycle bin");
  const exportBtn = h("button", { type: "button", class: "btn export-bundle-btn", title: "Download the selected runs as one bundle file, to import into another hub" }, "Export");
  const metaOnly = h("input", { type: "checkbox", class: "export-metadata-only" }) as HTMLInputElement;
  const withArtifacts = h("input", { type: "checkbox", class: "export-with-artifacts" }) as HTMLInputElement;
  // Export and its options as one joined control (the options in a small menu), so the toolbar
  // fits on one line.
  const exportOptions = h(
    "details",
    { class: "chooser export-options" },
    h("summary", { class: "export-options-toggle", title: "Export options", attrs: { "aria-label": "Export options" } }, "▾"),
    h(
      "div",
      { class: "chooser-menu export-options-menu" },
      h(
        "label",
        { class: "export-meta small", title: "Carry each run's records, metrics and logs only; checkpoints and media are listed by size and SHA-256, without their bytes" },
        metaOnly,
        "metadata only",
      ),
      h(
        "label",
        { class: "export-meta small", title: "Also carry the artifact versions the runs produced or used, with the contents this hub has fetched" },
        withArtifacts,
        "with artifacts",
      ),
    ),
  );
  const exportGroup = h(
    "span",
    { class: "export-group", attrs: { role: "group", "aria-label": "Export the selected runs as a bundle" } },
    exportBtn,
    exportOptions,
  );
  const showExportOptions = () => exportOptions.classList.toggle("has-options", metaOnly.checked || withArtifacts.checked);
  metaOnly.addEventListener("change", showExportOptions);
  withArtifacts.addEventListener("change", showExportOptions);
  // The menu closes on a click elsewhere and on Escape, as menus do.
  const closeExportOptions = (e: Event) => {
    if (!exportOptions.open) return;
    if (e instanceof KeyboardEvent ? e.key === "Escape" : !exportOptions.contains(e.target as Node)) exportOptions.open = false;
  };
  document.addEventListener("click", closeExportOptions);
  exportOptions.addEventListener("keydown", closeExportOptions);
  const importBtn = h("button", { type: "button", class: "btn import-bundle-btn", title: "Import a bundle file (or drop one anywhere on the page)" }, "Import");
  const csvBtn = h("button", { type: "button", class: "btn csv-btn", title: "All matching runs, with the columns shown" }, "Export CSV");
  const selInfo = h("span", { class: "muted sel-info" });
  const chooser = h("details", { class: "chooser" });
  const tableBox = h("div", { class: "table-box" });
  const pager = h("div", { class: "pager" });
  const treeBox = h("aside", { class: "sidebar" });
  const errorBox = h("div");
  const noteBox = h("div", { class: "muted small runs-note" });

  const el = h(
    "div",
    { class: "page runs-page", dataset: { view: trash ? "trash" : "active" } },
    treeBox,
    h(
      "section",
      { class: "main" },
      h("h1", {}, trash ? "Recycle bin" : "Runs"),
      // The filters on one row (the filter box, status, remote); the view and the actions on
      // the toolbar below, which fits on one line from 1,280 px up.
      h("div", { class: "filter-row" }, filter.el, statusSel, remoteSel),
      h(
        "div",
        { class: "toolbar" },
        groupSel,
        chooser,
        csvBtn,
        trash ? null : importBtn,
        h("span", { class: "spacer" }),
        selInfo,
        trash ? null : compareBtn,
        trash ? null : exportGroup,
        trashBtn,
        trash ? emptyBtn : null,
      ),
      errorBox,
      tableBox,
      noteBox,
      pager,
    ),
  );

  /** The view as URL parameters (defaults left out). */
  const viewParams = () => ({
    q: state.q,
    path: state.path,
    status: state.status,
    remote: state.remote,
    sort: state.sort === "created_at" ? "" : state.sort,
    order: state.order === "desc" ? "" : state.order,
    cols: joinList(extraColumns),
    group: state.group,
    limit: state.limit === PAGE_SIZE ? "" : String(state.limit),
  });
  const syncUrl = () => {
    const v = viewParams();
    rememberView(pageName, v);
    replaceHash(buildHash(pageName, { ...v, offset: state.group ? "" : state.offset || "" }));
  };

  const updateSelection = () => {
    const n = selected.size;
    selInfo.textContent = n > 0 ? `${n} selected` : "";
    compareBtn.disabled = n < 2 || n > 50;
    compareBtn.title = n < 2 ? "Select two or more runs" : n > 50 ? "At most 50 runs" : "";
    trashBtn.disabled = n === 0;
    exportBtn.disabled = n === 0;
    exportBtn.title = n === 0 ? "Select the runs to export" : `Download the ${n} selected run${n === 1 ? "" : "s"} as one bundle file, to import into another hub`;
  };

  const query = (): RunsQuery => ({
    q: state.q || undefined,
    path: state.path || undefined,
    status: state.status || undefined,
    remote: state.remote || undefined,
    view: trash ? "trash" : "active",
    sort: state.sort,
    order: state.order,
    limit: state.limit,
    offset: state.offset,
  });

  /** Every run matching the filter in the table's order, at most `cap` of them. */
  const fetchAll = async (cap: number, progress?: (n: number, total: number) => void): Promise<{ runs: Run[]; total: number }> => {
    const runs: Run[] = [];
    let total = 0;
    for (let offset = 0; ; offset += BULK_PAGE) {
      const page = await api.runs({ ...query(), limit: Math.min(BULK_PAGE, cap - runs.length), offset });
      total = page.total;
      runs.push(...page.runs);
      progress?.(runs.length, total);
      if (page.runs.length === 0 || runs.length >= Math.min(cap, total)) break;
    }
    return { runs, total };
  };

  const purge = async (r: Run) => {
    const name = r.alias ? `${r.alias} (${r.run_id})` : r.run_id;
    if (!window.confirm(`Delete run ${name} permanently? Its data leaves the hub's store for good; this cannot be undone.`)) return;
    try {
      await api.purgeRun(r.key);
      selected.delete(r.key);
      replace(errorBox);
    } catch (e) {
      replace(errorBox, message("error", `Run ${name} was not deleted: ${(e as Error).message}`));
    }
    updateSelection();
    void load(true);
  };

  const shownColumns = (): Column<Run>[] => {
    const cols = [
      ...baseColumns({
        onTag: (t) => applyFilter(tagFilter(t)),
        // A hub without remote states (older API) sends none: no badge then.
        statusExtra: (r) => (r.remote_state ? livenessBadge(r) : null),
      }),
      ...userColumns(extraColumns),
    ];
    if (trash)
      cols.push({
        id: "actions",
        label: "",
        className: "col-actions",
        cell: (r) => {
          const b = h("button", { type: "button", class: "btn danger small purge-btn" }, "Delete permanently");
          b.addEventListener("click", (ev) => {
            ev.stopPropagation();
            void purge(r);
          });
          return b;
        },
      });
    return cols;
  };

  const applyFilter = (q: string) => {
    filter.setValue(q);
    state.q = q;
    state.offset = 0;
    void load();
  };

  const renderGroupChooser = () => {
    const opts: [string, string][] = [["", "No grouping"], ...GROUP_FIELDS.map((f): [string, string] => [f, `Group by ${f}`])];
    for (const k of columns.config) opts.push([`config.${k}`, `Group by config.${k}`]);
    if (state.group && !opts.some(([v]) => v === state.group)) opts.push([state.group, `Group by ${state.group}`]);
    replace(groupSel, ...opts.map(([v, label]) => h("option", { value: v, selected: v === state.group }, label)));
    // The select is kept narrow (styles.css): a long choice shows whole in its tooltip.
    groupSel.title = opts.find(([v]) => v === state.group)?.[1] ?? "";
  };

  const renderChooser = () => {
    const box = h("div", { class: "chooser-menu" });
    const group = (kind: "summary" | "config", keys: string[]) => {
      if (keys.length === 0) return;
      box.appendChild(h("div", { class: "chooser-head" }, kind === "summary" ? "Summary" : "Config"));
      for (const k of keys) {
        const id = `${kind}.${k}`;
        const cb = h("input", { type: "checkbox", checked: extraColumns.includes(id), dataset: { col: id } });
        cb.addEventListener("change", () => {
          extraColumns = cb.checked ? [...extraColumns, id] : extraColumns.filter((x) => x !== id);
          syncUrl();
          renderTable(lastRuns, lastTotal);
        });
        box.appendChild(h("label", { class: "check" }, cb, ` ${k}`));
      }
    };
    group("summary", columns.summary);
    group("config", columns.config);
    if (!box.firstChild) box.appendChild(h("div", { class: "muted" }, "No summary or config keys yet."));
    replace(chooser, h("summary", { class: "btn" }, "Columns"), box);
  };

  /** A group row's cell: count and name in the run column, mean and range in numeric ones. */
  const groupCell = (label: string, rows: Run[]) => (c: Column<Run>): Node | string | null => {
    if (c.id === "name")
      return h("span", { class: "group-label" }, h("span", { class: "group-caret", attrs: { "aria-hidden": "true" } }, collapsed.has(label) ? "▸ " : "▾ "), `${state.group} = ${label}`, h("span", { class: "muted group-count" }, ` · ${rows.length} run${rows.length === 1 ? "" : "s"}`));
    if (!c.numeric || !c.value) return null;
    const s = aggregate(rows.map((r) => c.value!(r)));
    if (s.n === 0) return "–";
    const f = c.formatAggregate ?? formatValue;
    return h(
      "div",
      { class: "agg", title: `n ${s.n} · mean ${s.mean} · std ${s.std} · min ${s.min} · max ${s.max}`, dataset: { n: String(s.n), mean: String(s.mean), min: String(s.min), max: String(s.max) } },
      h("span", { class: "agg-mean" }, f(s.mean)),
      s.n > 1 ? h("div", { class: "muted small agg-range" }, `${f(s.min)} – ${f(s.max)}`) : null,
    );
  };

  const renderTable = (runs: Run[], total: number) => {
    lastRuns = runs;
    lastTotal = total;
    if (cursorEdge && runs.length > 0) {
      cursorKey = (cursorEdge === "first" ? runs[0]! : runs[runs.length - 1]!).key;
      cursorEdge = null;
    }
    const filtered = Boolean(state.q || state.path || state.status || state.remote);
    emptyBtn.disabled = trash && total === 0 && !filtered;
    if (total === 0) {
      if (trash && !filtered) replace(tableBox, message("empty", "The recycle bin is empty."));
      else if (filtered) replace(tableBox, message("empty", "No runs match these filters."));
      else
        replace(
          tableBox,
          message("empty", "No runs yet — connect a server with ", code("runicorn-hub connect user@host"), ", or try ", code("runicorn-hub demo"), "."),
        );
      replace(pager);
      replace(noteBox);
      return;
    }
    const sort: SortState = { key: state.sort, order: state.order };
    let groups: TableGroup<Run>[] | undefined;
    if (state.group) {
      groups = groupRuns(runs, state.group).map((g) => ({
        id: g.label,
        rows: g.rows,
        cell: groupCell(g.label, g.rows),
        collapsed: collapsed.has(g.label),
        onToggle: () => {
          if (collapsed.has(g.label)) collapsed.delete(g.label);
          else collapsed.add(g.label);
          renderTable(lastRuns, lastTotal);
        },
      }));
    }
    const table = dataTable<Run>({
      columns: shownColumns(),
      rows: runs,
      rowKey: (r) => r.key,
      sort,
      onSort: (s) => {
        state.sort = s.key;
        state.order = s.order;
        state.offset = 0;
        void load();
      },
      selected,
      onSelect: updateSelection,
      onRowClick: (r) => (window.location.hash = runHash(r.key)),
      rowClass: (r) =>
        `run-row${r.removed ? " removed" : ""}${r.key === cursorKey ? " cursor" : ""}${r.remote_state && r.remote_state !== "live" ? " not-live" : ""}`,
      groups,
    });
    replace(tableBox, table);
    if (state.group) {
      replace(pager);
      noteBox.textContent =
        runs.length < total
          ? `Grouped the first ${formatNumber(runs.length)} of ${formatNumber(total)} matching runs; narrow the filter to group them all.`
          : `${formatNumber(total)} runs in ${groups!.length} group${groups!.length === 1 ? "" : "s"}.`;
      noteBox.textContent += " Group rows show the mean of each numeric column, its min – max below (hover for n and std).";
      return;
    }
    replace(noteBox);
    const first = state.offset + 1;
    const last = state.offset + runs.length;
    const prev = h("button", { type: "button", class: "btn", disabled: state.offset === 0 }, "‹ Previous");
    const next = h("button", { type: "button", class: "btn", disabled: last >= total }, "Next ›");
    const turn = (offset: number) => {
      state.offset = offset;
      void load();
      el.scrollIntoView({ block: "start" });
    };
    prev.addEventListener("click", () => turn(Math.max(0, state.offset - state.limit)));
    next.addEventListener("click", () => turn(state.offset + state.limit));
    const size = h(
      "select",
      { class: "page-size", attrs: { "aria-label": "Runs per page" } },
      ...[...new Set([...PAGE_SIZES, state.limit])].sort((a, b) => a - b).map((n) => h("option", { value: String(n), selected: n === state.limit }, `${n} per page`)),
    );
    size.addEventListener("change", () => {
      state.limit = Number(size.value);
      state.offset = 0;
      void load();
    });
    replace(pager, prev, h("span", { class: "muted page-info" }, `${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(total)}`), next, size);
  };

  const loadTree = async () => {
    try {
      const t = await api.paths({
        view: trash ? "trash" : "active",
        status: state.status || undefined,
        remote: state.remote || undefined,
        q: state.q || undefined,
      });
      replace(
        treeBox,
        pathTree({
          root: t.tree,
          selected: state.path,
          open: openPaths,
          onSelect: (p) => {
            if (p !== state.path) {
              state.path = p;
              state.offset = 0;
              void load();
            } else void loadTree();
          },
        }),
      );
    } catch (e) {
      // A malformed filter is shown under the box; the tree keeps its last counts.
      if (e instanceof ApiError && e.code === "bad_filter") return;
      replace(treeBox, message("error", `Paths: ${(e as Error).message}`));
    }
  };

  const load = async (quiet = false) => {
    // A reload scheduled before the page was left (a debounced store change) must neither
    // rewrite the new page's URL nor fetch for nothing.
    if (destroyed) return;
    syncUrl();
    const gen = ++generation;
    if (!quiet) tableBox.classList.add("loading");
    void loadTree();
    try {
      let runs: Run[];
      let total: number;
      if (state.group) {
        ({ runs, total } = await fetchAll(GROUP_LIMIT));
      } else {
        const page = await api.runs(query());
        if (gen !== generation) return;
        if (page.runs.length === 0 && page.total > 0 && state.offset > 0) {
          state.offset = Math.max(0, Math.floor((page.total - 1) / state.limit) * state.limit);
          void load(quiet);
          return;
        }
        ({ runs, total } = page);
      }
      if (gen !== generation) return;
      replace(errorBox);
      filter.showError(null);
      renderTable(runs, total);
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof ApiError && e.code === "bad_filter") {
        filter.showError({ message: e.message, position: e.position, length: e.length });
        replace(errorBox);
        return;
      }
      filter.showError(null);
      const msg = e instanceof ApiError && e.code === "network" ? e.message : `Could not load runs: ${(e as Error).message}`;
      replace(errorBox, message("error", msg));
    } finally {
      if (gen === generation) tableBox.classList.remove("loading");
    }
  };

  statusSel.addEventListener("change", () => {
    state.status = statusSel.value;
    state.offset = 0;
    void load();
  });
  remoteSel.addEventListener("change", () => {
    state.remote = remoteSel.value;
    state.offset = 0;
    void load();
  });
  groupSel.addEventListener("change", () => {
    state.group = groupSel.value;
    groupSel.title = groupSel.selectedOptions[0]?.textContent ?? "";
    state.offset = 0;
    collapsed.clear();
    void load();
  });
  const compare = () => {
    if (selected.size >= 2 && selected.size <= 50) window.location.hash = compareHash([...selected]);
  };
  compareBtn.addEventListener("click", compare);
  trashBtn.addEventListener("click", async () => {
    const ids = [...selected];
    trashBtn.disabled = true;
    const failures: string[] = [];
    for (const id of ids) {
      try {
        if (trash) await api.restoreRun(id);
        else await api.trashRun(id);
        selected.delete(id);
      } catch (e) {
        failures.push(`run ${id}: ${(e as Error).message}`);
      }
    }
    replace(errorBox, failures.length ? message("error", `Some runs were not moved: ${failures.join("; ")}`) : null);
    updateSelection();
    void load(true);
  });
  emptyBtn.addEventListener("click", async () => {
    if (!window.confirm("Empty the recycle bin? Every run in it leaves the hub's store for good; this cannot be undone.")) return;
    emptyBtn.disabled = true;
    try {
      const a = await api.emptyRecycleBin();
      selected.clear();
      replace(errorBox, message("empty", `Deleted ${formatNumber(a.purged)} run${a.purged === 1 ? "" : "s"} permanently.`));
    } catch (e) {
      replace(errorBox, message("error", `The recycle bin was not emptied: ${(e as Error).message}`));
    }
    updateSelection();
    void load(true);
  });
  importBtn.addEventListener("click", () => pickBundle());
  exportBtn.addEventListener("click", async () => {
    const keys = [...selected];
    if (keys.length === 0) return;
    exportBtn.disabled = true;
    exportBtn.textContent = "Exporting…";
    try {
      const ready = await bundlesApi.exportRuns(keys, { metadataOnly: metaOnly.checked, withArtifacts: withArtifacts.checked });
      // A plain link: the browser streams the download to disk, never into the page's memory.
      const a = h("a", { href: ready.url, download: ready.filename });
      a.style.display = "none";
      document.body.append(a);
      a.click();
      a.remove();
      replace(errorBox);
    } catch (e) {
      replace(errorBox, message("error", `The runs were not exported: ${(e as Error).message}`));
    } finally {
      exportBtn.textContent = "Export";
      updateSelection();
    }
  });
  csvBtn.addEventListener("click", async () => {
    csvBtn.disabled = true;
    const label = csvBtn.textContent;
    try {
      const { runs } = await fetchAll(Number.MAX_SAFE_INTEGER, (n, total) => {
        csvBtn.textContent = `Exporting ${formatNumber(n)} of ${formatNumber(total)}…`;
      });
      downloadCsv(trash ? "runicorn-recycle-bin.csv" : "runicorn-runs.csv", toCsv(runsCsvRows(runs, shownColumns())));
    } catch (e) {
      replace(errorBox, message("error", `Export failed: ${(e as Error).message}`));
    } finally {
      csvBtn.textContent = label;
      csvBtn.disabled = false;
    }
  });

  // Keyboard: "/" filter, j/k move, Enter open, x/space select, c compare.
  const rows = () => [...tableBox.querySelectorAll<HTMLTableRowElement>("tr.run-row")];
  const moveCursor = (delta: number) => {
    const list = rows();
    if (list.length === 0) return;
    const at = list.findIndex((tr) => Number(tr.dataset.id) === cursorKey);
    // Past the page's last (first) run: on to the next (previous) page, when there is one.
    if (!state.group && at >= 0) {
      if (delta > 0 && at === list.length - 1 && state.offset + lastRuns.length < lastTotal) {
        cursorEdge = "first";
        state.offset += state.limit;
        void load();
        return;
      }
      if (delta < 0 && at === 0 && state.offset > 0) {
        cursorEdge = "last";
        state.offset = Math.max(0, state.offset - state.limit);
        void load();
        return;
      }
    }
    const next = at < 0 ? (delta > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + delta));
    list.forEach((tr) => tr.classList.remove("cursor"));
    const tr = list[next]!;
    tr.classList.add("cursor");
    cursorKey = Number(tr.dataset.id);
    tr.scrollIntoView({ block: "nearest" });
  };
  const cursorRow = () => rows().find((tr) => Number(tr.dataset.id) === cursorKey) ?? null;
  const stopKeys = registerShortcuts([
    {
      keys: ["/"],
      label: "/",
      description: "Focus the filter",
      run: () => {
        filter.input.focus();
        filter.input.select();
      },
    },
    { keys: ["j"], label: "j", description: "Next run", run: () => moveCursor(1) },
    { keys: ["k"], label: "k", description: "Previous run", run: () => moveCursor(-1) },
    {
      keys: ["Enter", "o"],
      label: "Enter",
      description: "Open the run",
      run: () => {
        if (cursorKey !== null && cursorRow()) window.location.hash = runHash(cursorKey);
      },
    },
    {
      keys: ["x", " "],
      label: "x / space",
      description: "Select or unselect the run",
      run: () => cursorRow()?.querySelector<HTMLInputElement>("td.col-select input")?.click(),
    },
    { keys: ["c"], label: "c", description: "Compare the selected runs", run: compare },
  ]);

  void (async () => {
    try {
      const [cols, remotes] = await Promise.all([api.columns(), api.remotes()]);
      columns = cols;
      filter.setKeys({ summary: cols.summary, config: cols.config, metrics: cols.metrics ?? [] });
      renderChooser();
      renderGroupChooser();
      for (const r of remotes.remotes as Remote[]) remoteSel.appendChild(h("option", { value: r.name, selected: r.name === state.remote }, r.name));
    } catch {
      renderChooser();
    }
  })();
  renderChooser();
  renderGroupChooser();
  updateSelection();
  void load();
  // Grouped, a reload fetches every matching run: while runs train (a change a second) it
  // happens at most every GROUPED_REFRESH_MS.
  let lastGroupedLoad = 0;
  let later: ReturnType<typeof setTimeout> | undefined;
  const refresh = debounce(() => {
    if (!state.group) return void load(true);
    const wait = lastGroupedLoad + GROUPED_REFRESH_MS - Date.now();
    if (wait <= 0) {
      lastGroupedLoad = Date.now();
      return void load(true);
    }
    if (later === undefined)
      later = setTimeout(() => {
        later = undefined;
        lastGroupedLoad = Date.now();
        void load(true);
      }, wait);
  }, 300);
  const stop = onStoreChanged(refresh);
  // "last heard 2 min ago" stays true while nothing else changes.
  const ticker = setInterval(() => refreshLiveness(tableBox), 15_000);
  return {
    el,
    destroy: () => {
      destroyed = true;
      stop();
      stopKeys();
      document.removeEventListener("click", closeExportOptions);
      clearInterval(ticker);
      if (later !== undefined) clearTimeout(later);
    },
  };
}
