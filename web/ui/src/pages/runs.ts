/**
 * The runs table (`#/runs`) and the recycle bin (`#/trash`): path tree, filters, sortable
 * columns (server-side), user-chosen summary/config columns, paging, selection with Compare and
 * Move to recycle bin / Restore. Filters live in the URL; everything is fetched a page at a
 * time, so 100,000 runs cost the same as 10.
 */
import { api, ApiError, RUN_STATUSES, type Columns, type Remote, type Run, type RunsQuery } from "../api";
import { statusBadge } from "../components/badge";
import { dataTable, type Column, type SortState } from "../components/table";
import { pathTree } from "../components/tree";
import { code, debounce, h, message, replace, store } from "../lib/dom";
import { formatAgo, formatDuration, formatNumber, formatTime, formatValue, getPath, runDuration } from "../lib/format";
import { buildHash, compareHash, replaceHash, runHash } from "../router";
import { onStoreChanged, type Page } from "./page";

const PAGE_SIZE = 50;
const COLUMNS_KEY = "runicorn.columns";

function savedColumns(): string[] {
  try {
    const v = JSON.parse(store.get(COLUMNS_KEY) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** The name a run is shown by. */
export function runName(r: Pick<Run, "alias" | "run_id">): string {
  return r.alias && r.alias.length > 0 ? r.alias : r.run_id;
}

/** `remote · host`, or whichever is known. */
export function runHost(r: Pick<Run, "remote" | "host">): string {
  return [r.remote, r.host].filter((x) => x).join(" · ") || "–";
}

export function runsPage(params: URLSearchParams, trash: boolean): Page {
  const state = {
    q: params.get("q") ?? "",
    path: params.get("path") ?? "",
    status: params.get("status") ?? "",
    remote: params.get("remote") ?? "",
    sort: params.get("sort") ?? "created_at",
    order: (params.get("order") === "asc" ? "asc" : "desc") as "asc" | "desc",
    offset: Math.max(0, Number(params.get("offset") ?? 0) || 0),
  };
  const selected = new Set<number>();
  const openPaths = new Set<string>();
  let extraColumns = savedColumns();
  let columns: Columns = { summary: [], config: [], metrics: [] };
  let generation = 0;
  let destroyed = false;
  let lastRuns: Run[] = [];

  const search = h("input", {
    type: "search",
    placeholder: "Filter by path, alias, id, host or tag",
    value: state.q,
    class: "filter",
    attrs: { "aria-label": "Filter runs" },
  });
  const statusSel = h(
    "select",
    { attrs: { "aria-label": "Status" }, class: "status-filter" },
    h("option", { value: "" }, "All statuses"),
    ...RUN_STATUSES.map((s) => h("option", { value: s, selected: state.status === s }, s)),
  );
  const remoteSel = h("select", { attrs: { "aria-label": "Remote" }, class: "remote-filter" }, h("option", { value: "" }, "All remotes"));
  const compareBtn = h("button", { type: "button", class: "btn primary compare-btn" }, "Compare");
  const trashBtn = h("button", { type: "button", class: "btn danger trash-btn" }, trash ? "Restore" : "Move to recycle bin");
  const selInfo = h("span", { class: "muted sel-info" });
  const chooser = h("details", { class: "chooser" });
  const tableBox = h("div", { class: "table-box" });
  const pager = h("div", { class: "pager" });
  const treeBox = h("aside", { class: "sidebar" });
  const errorBox = h("div");

  const el = h(
    "div",
    { class: "page runs-page", dataset: { view: trash ? "trash" : "active" } },
    treeBox,
    h(
      "section",
      { class: "main" },
      h("h1", {}, trash ? "Recycle bin" : "Runs"),
      h("div", { class: "toolbar" }, search, statusSel, remoteSel, chooser, h("span", { class: "spacer" }), selInfo, trash ? null : compareBtn, trashBtn),
      errorBox,
      tableBox,
      pager,
    ),
  );

  const syncUrl = () =>
    replaceHash(
      buildHash(trash ? "trash" : "runs", {
        q: state.q,
        path: state.path,
        status: state.status,
        remote: state.remote,
        sort: state.sort === "created_at" ? "" : state.sort,
        order: state.order === "desc" ? "" : state.order,
        offset: state.offset || "",
      }),
    );

  const updateSelection = () => {
    const n = selected.size;
    selInfo.textContent = n > 0 ? `${n} selected` : "";
    compareBtn.disabled = n < 2 || n > 50;
    compareBtn.title = n < 2 ? "Select two or more runs" : n > 50 ? "At most 50 runs" : "";
    trashBtn.disabled = n === 0;
  };

  const query = (): RunsQuery => ({
    q: state.q || undefined,
    path: state.path || undefined,
    status: state.status || undefined,
    remote: state.remote || undefined,
    view: trash ? "trash" : "active",
    sort: state.sort,
    order: state.order,
    limit: PAGE_SIZE,
    offset: state.offset,
  });

  const baseColumns = (): Column<Run>[] => [
    { id: "status", label: "Status", sort: "status", cell: (r) => statusBadge(r.status, r.reason) },
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
          ...r.tags.map((t) => h("span", { class: "tag" }, t)),
        ),
    },
    { id: "path", label: "Path", sort: "path", cell: (r) => r.path ?? "–" },
    { id: "host", label: "Host", sort: "host", cell: (r) => runHost(r) },
    {
      id: "created",
      label: "Created",
      sort: "created_at",
      cell: (r) => h("span", { title: formatTime(r.created_at) }, formatAgo(r.created_at)),
    },
    { id: "duration", label: "Duration", cell: (r) => formatDuration(runDuration(r)) },
    { id: "last_step", label: "Last step", sort: "last_step", className: "num", cell: (r) => formatNumber(r.last_step) },
  ];

  const userColumns = (): Column<Run>[] =>
    extraColumns.map((c) => {
      const [kind, ...rest] = c.split(".");
      const key = rest.join(".");
      return {
        id: c,
        label: key,
        sort: c,
        className: "num user-col",
        cell: (r: Run) => formatValue(getPath(kind === "summary" ? r.summary : r.config, key)),
      };
    });

  const renderChooser = () => {
    const box = h("div", { class: "chooser-menu" });
    const group = (kind: "summary" | "config", keys: string[]) => {
      if (keys.length === 0) return;
      box.appendChild(h("div", { class: "chooser-head" }, kind === "summary" ? "Summary" : "Config"));
      for (const k of keys) {
        const id = `${kind}.${k}`;
        const cb = h("input", { type: "checkbox", checked: extraColumns.includes(id) });
        cb.addEventListener("change", () => {
          extraColumns = cb.checked ? [...extraColumns, id] : extraColumns.filter((x) => x !== id);
          store.set(COLUMNS_KEY, JSON.stringify(extraColumns));
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

  let lastTotal = 0;
  const renderTable = (runs: Run[], total: number) => {
    lastRuns = runs;
    lastTotal = total;
    const filtered = Boolean(state.q || state.path || state.status || state.remote);
    if (total === 0) {
      if (trash) replace(tableBox, message("empty", "The recycle bin is empty."));
      else if (filtered) replace(tableBox, message("empty", "No runs match these filters."));
      else
        replace(
          tableBox,
          message("empty", "No runs yet — connect a server with ", code("runicorn-hub connect user@host"), ", or try ", code("runicorn-hub demo"), "."),
        );
      replace(pager);
      return;
    }
    const sort: SortState = { key: state.sort, order: state.order };
    const table = dataTable<Run>({
      columns: [...baseColumns(), ...userColumns()],
      rows: runs,
      rowKey: (r) => r.key,
      sort,
      onSort: (s) => {
        state.sort = s.key;
        state.order = s.order;
        state.offset = 0;
        load();
      },
      selected,
      onSelect: updateSelection,
      onRowClick: (r) => (window.location.hash = runHash(r.key)),
      rowClass: (r) => `run-row${r.removed ? " removed" : ""}`,
    });
    replace(tableBox, table);
    const first = state.offset + 1;
    const last = state.offset + runs.length;
    const prev = h("button", { type: "button", class: "btn", disabled: state.offset === 0 }, "‹ Previous");
    const next = h("button", { type: "button", class: "btn", disabled: last >= total }, "Next ›");
    const turn = (offset: number) => {
      state.offset = offset;
      void load();
      el.scrollIntoView({ block: "start" });
    };
    prev.addEventListener("click", () => turn(Math.max(0, state.offset - PAGE_SIZE)));
    next.addEventListener("click", () => turn(state.offset + PAGE_SIZE));
    replace(pager, prev, h("span", { class: "muted page-info" }, `${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(total)}`), next);
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
              load();
            } else loadTree();
          },
        }),
      );
    } catch (e) {
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
      const page = await api.runs(query());
      if (gen !== generation) return;
      if (page.runs.length === 0 && page.total > 0 && state.offset > 0) {
        state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
        void load(quiet);
        return;
      }
      replace(errorBox);
      renderTable(page.runs, page.total);
    } catch (e) {
      if (gen !== generation) return;
      const msg = e instanceof ApiError && e.code === "network" ? e.message : `Could not load runs: ${(e as Error).message}`;
      replace(errorBox, message("error", msg));
    } finally {
      if (gen === generation) tableBox.classList.remove("loading");
    }
  };

  search.addEventListener(
    "input",
    debounce(() => {
      state.q = search.value.trim();
      state.offset = 0;
      load();
    }, 250),
  );
  statusSel.addEventListener("change", () => {
    state.status = statusSel.value;
    state.offset = 0;
    load();
  });
  remoteSel.addEventListener("change", () => {
    state.remote = remoteSel.value;
    state.offset = 0;
    load();
  });
  compareBtn.addEventListener("click", () => {
    window.location.hash = compareHash([...selected]);
  });
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

  void (async () => {
    try {
      const [cols, remotes] = await Promise.all([api.columns(), api.remotes()]);
      columns = cols;
      renderChooser();
      for (const r of remotes.remotes as Remote[]) remoteSel.appendChild(h("option", { value: r.name, selected: r.name === state.remote }, r.name));
    } catch {
      renderChooser();
    }
  })();
  renderChooser();
  updateSelection();
  void load();
  const refresh = debounce(() => void load(true), 300);
  const stop = onStoreChanged(refresh);
  return {
    el,
    destroy: () => {
      destroyed = true;
      stop();
    },
  };
}
