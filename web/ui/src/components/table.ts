/**
 * A data table with server-side sorting (clicking a header asks the page to sort) and an
 * optional selection column. Cells are built by the column's `cell` function, which returns
 * DOM nodes or plain text (set as text). Rows can be shown in groups, each under a header row
 * (its aggregates) that folds it.
 */
import { h } from "../lib/dom";

export interface Column<T> {
  id: string;
  label: string;
  /** The API sort key, when the column can be sorted. */
  sort?: string;
  className?: string;
  cell: (row: T) => Node | string;
  /** The value behind the cell, for CSV export and group aggregates (numbers stay numbers). */
  value?: (row: T) => string | number | null;
  /** Aggregated (mean, min, max) in group rows. */
  numeric?: boolean;
  /** How an aggregate of the column is written (default: as a number). */
  formatAggregate?: (v: number) => string;
}

/** A group of rows shown under a header row (grouped tables). */
export interface TableGroup<T> {
  id: string;
  rows: T[];
  /** The header row's cell of a column (null: empty). */
  cell: (column: Column<T>) => Node | string | null;
  collapsed: boolean;
  onToggle: () => void;
}

export interface SortState {
  key: string;
  order: "asc" | "desc";
}

export interface TableOptions<T> {
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => number;
  sort?: SortState;
  onSort?: (s: SortState) => void;
  selected?: Set<number>;
  onSelect?: (selected: Set<number>) => void;
  onRowClick?: (row: T, ev: MouseEvent) => void;
  rowClass?: (row: T) => string;
  /** When set, rows are shown under their group's header row (and `rows` lists them all). */
  groups?: TableGroup<T>[];
}

export function dataTable<T>(o: TableOptions<T>): HTMLTableElement {
  const selectable = o.selected !== undefined;
  const selected = o.selected ?? new Set<number>();
  const headCells: HTMLElement[] = [];
  const rowBoxes: HTMLInputElement[] = [];

  const all = h("input", {
    type: "checkbox",
    title: "Select all on this page",
    attrs: { "aria-label": "Select all on this page" },
  });
  const syncAll = () => {
    const n = o.rows.filter((r) => selected.has(o.rowKey(r))).length;
    all.checked = n > 0 && n === o.rows.length;
    all.indeterminate = n > 0 && n < o.rows.length;
  };
  all.addEventListener("change", () => {
    for (const r of o.rows) {
      if (all.checked) selected.add(o.rowKey(r));
      else selected.delete(o.rowKey(r));
    }
    rowBoxes.forEach((b) => (b.checked = all.checked));
    o.onSelect?.(selected);
  });
  if (selectable) headCells.push(h("th", { class: "col-select" }, all));

  for (const c of o.columns) {
    const active = o.sort && c.sort && o.sort.key === c.sort;
    const arrow = active ? (o.sort!.order === "asc" ? " ▲" : " ▼") : "";
    const th = h("th", { class: `${c.className ?? ""} ${c.sort ? "sortable" : ""}`, dataset: { col: c.id } }, c.label + arrow);
    if (active) th.setAttribute("aria-sort", o.sort!.order === "asc" ? "ascending" : "descending");
    if (c.sort && o.onSort) {
      const key = c.sort;
      th.tabIndex = 0;
      const go = () => {
        const order = o.sort?.key === key && o.sort.order === "desc" ? "asc" : "desc";
        o.onSort!({ key, order });
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          go();
        }
      });
    }
    headCells.push(th);
  }

  const body = h("tbody");
  const addRow = (r: T) => {
    const key = o.rowKey(r);
    const tr = h("tr", { class: o.rowClass?.(r) ?? "", dataset: { id: String(key) } });
    if (selectable) {
      const box = h("input", { type: "checkbox", checked: selected.has(key), attrs: { "aria-label": "Select run" } });
      box.addEventListener("click", (ev) => ev.stopPropagation());
      box.addEventListener("change", () => {
        if (box.checked) selected.add(key);
        else selected.delete(key);
        syncAll();
        o.onSelect?.(selected);
      });
      rowBoxes.push(box);
      tr.appendChild(h("td", { class: "col-select" }, box));
    }
    for (const c of o.columns) {
      const v = c.cell(r);
      tr.appendChild(h("td", { class: c.className ?? "", dataset: { col: c.id } }, v));
    }
    if (o.onRowClick) {
      const click = o.onRowClick;
      tr.addEventListener("click", (ev) => {
        if ((ev.target as HTMLElement).closest("a,button,input,select,textarea")) return;
        click(r, ev);
      });
      tr.classList.add("clickable");
    }
    body.appendChild(tr);
  };
  if (o.groups) {
    for (const g of o.groups) {
      const tr = h("tr", {
        class: `group-row${g.collapsed ? " collapsed" : ""}`,
        dataset: { group: g.id },
        attrs: { "aria-expanded": String(!g.collapsed) },
      });
      if (selectable) tr.appendChild(h("td", { class: "col-select" }));
      for (const c of o.columns) tr.appendChild(h("td", { class: c.className ?? "", dataset: { col: c.id } }, g.cell(c)));
      tr.tabIndex = 0;
      tr.addEventListener("click", () => g.onToggle());
      tr.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          g.onToggle();
        }
      });
      body.appendChild(tr);
      if (!g.collapsed) g.rows.forEach(addRow);
    }
  } else o.rows.forEach(addRow);
  syncAll();
  return h("table", { class: "data" }, h("thead", {}, h("tr", {}, ...headCells)), body);
}
