/** The path tree beside the runs table: folders with run counts; a click filters by prefix. */
import type { PathNode } from "../api";
import { h } from "../lib/dom";

export interface TreeOptions {
  root: PathNode;
  selected: string;
  onSelect: (path: string) => void;
  /** Paths shown open; kept by the page between refreshes. */
  open: Set<string>;
}

/** Children drawn per folder; the rest are reached through the filter box. */
export const MAX_CHILDREN_SHOWN = 500;

export function pathTree(o: TreeOptions): HTMLElement {
  const list = (nodes: PathNode[], depth: number): HTMLElement => {
    const ul = h("ul", { class: "tree-list", attrs: { role: depth === 0 ? "tree" : "group" } });
    const shown = nodes.length > MAX_CHILDREN_SHOWN ? nodes.slice(0, MAX_CHILDREN_SHOWN) : nodes;
    for (const n of shown) {
      const isOpen = o.open.has(n.path) || o.selected === n.path || o.selected.startsWith(`${n.path}/`);
      const hasKids = n.children.length > 0;
      const toggle = h(
        "button",
        { class: "tree-toggle", type: "button", attrs: { "aria-label": isOpen ? "Collapse" : "Expand" } },
        hasKids ? (isOpen ? "▾" : "▸") : "",
      );
      toggle.disabled = !hasKids;
      toggle.addEventListener("click", () => {
        if (o.open.has(n.path)) o.open.delete(n.path);
        else o.open.add(n.path);
        o.onSelect(o.selected); // re-render with the same filter
      });
      const label = h(
        "button",
        {
          class: `tree-label ${o.selected === n.path ? "active" : ""}`,
          type: "button",
          title: n.path,
          dataset: { path: n.path },
        },
        h("span", { class: "tree-name" }, n.name),
        h("span", { class: "count" }, String(n.count)),
      );
      label.addEventListener("click", () => o.onSelect(n.path));
      const li = h("li", { attrs: { role: "treeitem" } }, h("div", { class: "tree-row" }, toggle, label));
      if (hasKids && isOpen) li.appendChild(list(n.children, depth + 1));
      ul.appendChild(li);
    }
    if (shown.length < nodes.length) {
      const rest = nodes.length - shown.length;
      ul.appendChild(h("li", { class: "tree-more muted small" }, `… ${rest} more: type a path in the filter box`));
    }
    return ul;
  };
  const all = h(
    "button",
    { class: `tree-label tree-all ${o.selected === "" ? "active" : ""}`, type: "button", dataset: { path: "" } },
    h("span", { class: "tree-name" }, "All runs"),
    h("span", { class: "count" }, String(o.root.count)),
  );
  all.addEventListener("click", () => o.onSelect(""));
  return h("nav", { class: "tree", attrs: { "aria-label": "Run paths" } }, all, list(o.root.children, 0));
}
