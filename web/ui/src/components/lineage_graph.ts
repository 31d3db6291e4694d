/**
 * The lineage graph (`GET /api/lineage`) as SVG: runs and artifact versions as boxes, laid out
 * in columns so that every "produced" (run → version) and "used" (version → run) arrow points
 * right. Runs and versions of every remote and host share one graph. Each box links to its page:
 * a run to `#/run/{key}`, a version to the Artifacts page on that version; a run the hub does not
 * have is shown but not linked. Text goes in through text nodes only.
 */
import type { Lineage, LineageNode } from "../api";
import { h } from "../lib/dom";
import { formatBytes } from "../lib/format";
import { artifactsHash, runHash } from "../router";

const SVG = "http://www.w3.org/2000/svg";
export const NODE_W = 190;
export const NODE_H = 52;
const COL_GAP = 56;
const ROW_GAP = 22;
const PAD = 16;

/** Where each node goes: its column (`layer`) and its row within the column. */
export interface Placement {
  layer: number;
  row: number;
}

/**
 * Columns by walking out from the root: following an edge forward moves one column right,
 * backward one left (so a producer sits left of its version, a user right of it). A node keeps
 * the column it was first reached at. Rows follow the order nodes were reached. Pure, for tests.
 */
export function layoutLineage(g: Pick<Lineage, "root" | "nodes" | "edges">): Map<string, Placement> {
  const ids = new Set(g.nodes.map((n) => n.id));
  const next = new Map<string, { to: string; step: number }[]>();
  const link = (a: string, b: string, step: number) => {
    if (!next.has(a)) next.set(a, []);
    next.get(a)!.push({ to: b, step });
  };
  for (const e of g.edges) {
    if (!ids.has(e.from) || !ids.has(e.to)) continue;
    link(e.from, e.to, 1);
    link(e.to, e.from, -1);
  }
  const layer = new Map<string, number>();
  const order: string[] = [];
  const visit = (start: string) => {
    layer.set(start, layer.get(start) ?? 0);
    order.push(start);
    const queue = [start];
    while (queue.length > 0) {
      const id = queue.shift()!;
      for (const { to, step } of next.get(id) ?? []) {
        if (layer.has(to)) continue;
        layer.set(to, layer.get(id)! + step);
        order.push(to);
        queue.push(to);
      }
    }
  };
  if (ids.has(g.root)) visit(g.root);
  // Nodes not connected to the root (should not happen) go in the root's column.
  for (const n of g.nodes) if (!layer.has(n.id)) visit(n.id);
  const min = Math.min(...layer.values());
  const rows = new Map<number, number>();
  const out = new Map<string, Placement>();
  for (const id of order) {
    const l = layer.get(id)! - min;
    const row = rows.get(l) ?? 0;
    rows.set(l, row + 1);
    out.set(id, { layer: l, row });
  }
  return out;
}

/** The page a node links to, or null (a run the hub does not have). */
export function nodeHref(n: LineageNode): string | null {
  if (n.kind === "run") return n.run?.key != null ? runHash(n.run.key, "artifacts") : null;
  const v = n.version;
  if (!v) return null;
  return artifactsHash({ remote: v.remote, artifactType: v.type, name: v.name, version: v.version });
}

/** Two lines of text for a node. */
export function nodeLabel(n: LineageNode): [string, string] {
  if (n.kind === "run" && n.run) {
    const r = n.run;
    const where = [r.remote, r.host].filter((x) => x).join(" · ");
    return [r.run_id, r.key === null ? `${where} · not in the hub` : `${where}${r.status ? ` · ${r.status}` : ""}`];
  }
  const v = n.version!;
  const aliases = v.aliases.length > 0 ? ` (${v.aliases.join(", ")})` : "";
  return [`${v.name}:v${v.version}${aliases}`, `${v.type} · ${v.remote} · ${formatBytes(v.size)}`];
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function text(x: number, y: number, cls: string, value: string, max: number): SVGTextElement {
  const t = svg("text", { x, y, class: cls });
  t.textContent = value.length > max ? `${value.slice(0, max - 1)}…` : value;
  return t;
}

/** The graph as an element: the SVG and a line saying what is left out. */
export function lineageGraph(g: Lineage): HTMLElement {
  const place = layoutLineage(g);
  let layers = 0;
  let rows = 0;
  for (const p of place.values()) {
    layers = Math.max(layers, p.layer + 1);
    rows = Math.max(rows, p.row + 1);
  }
  const width = PAD * 2 + layers * NODE_W + Math.max(0, layers - 1) * COL_GAP;
  const height = PAD * 2 + rows * NODE_H + Math.max(0, rows - 1) * ROW_GAP;
  const pos = (id: string) => {
    const p = place.get(id)!;
    return { x: PAD + p.layer * (NODE_W + COL_GAP), y: PAD + p.row * (NODE_H + ROW_GAP) };
  };
  const root = svg("svg", { class: "lineage-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  root.setAttribute("aria-label", `Lineage graph: ${g.nodes.length} runs and versions`);
  const defs = svg("defs");
  const marker = svg("marker", { id: "lineage-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "lineage-arrow" }));
  defs.appendChild(marker);
  root.appendChild(defs);

  for (const e of g.edges) {
    if (!place.has(e.from) || !place.has(e.to)) continue;
    const a = pos(e.from);
    const b = pos(e.to);
    const forward = b.x > a.x;
    const x1 = forward ? a.x + NODE_W : a.x;
    const x2 = forward ? b.x : b.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const y2 = b.y + NODE_H / 2;
    const bend = Math.max(30, Math.abs(x2 - x1) / 2) * (forward ? 1 : -1);
    const path = svg("path", {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      class: `lineage-edge lineage-edge-${e.kind}`,
      "marker-end": "url(#lineage-arrow)",
      "data-from": e.from,
      "data-to": e.to,
      "data-kind": e.kind,
    });
    const title = svg("title");
    title.textContent = e.kind === "produced" ? "produced" : "used by";
    path.appendChild(title);
    root.appendChild(path);
  }

  for (const n of g.nodes) {
    const { x, y } = pos(n.id);
    const href = nodeHref(n);
    const external = n.kind === "run" && n.run?.key === null;
    const group = svg(href ? "a" : "g", {
      class: `lineage-node lineage-${n.kind}${n.id === g.root ? " lineage-root" : ""}${external ? " lineage-external" : ""}`,
      "data-node": n.id,
      "data-kind": n.kind,
    });
    if (href) group.setAttribute("href", href);
    const [line1, line2] = nodeLabel(n);
    const title = svg("title");
    title.textContent = n.kind === "run" ? `run ${line1} — ${line2}` : `${line1} — ${line2}`;
    group.appendChild(title);
    group.appendChild(svg("rect", { x, y, width: NODE_W, height: NODE_H, rx: n.kind === "run" ? 6 : 16 }));
    group.appendChild(text(x + 10, y + 21, "lineage-title", line1, 25));
    group.appendChild(text(x + 10, y + 39, "lineage-sub", line2, 31));
    root.appendChild(group);
  }
  const legend = h(
    "p",
    { class: "muted small lineage-legend" },
    "Boxes: runs (square) and artifact versions (round). Solid arrows: a run produced a version; dashed: a version was used by a run. Click one to open it.",
  );
  const note = g.truncated ? h("p", { class: "muted small lineage-truncated" }, "More links exist beyond what is shown; open a node to see the graph around it.") : null;
  return h("div", { class: "lineage-graph" }, h("div", { class: "lineage-scroll" }, root), legend, note);
}
