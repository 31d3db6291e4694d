/** The run status badge: one colour per status, a pulsing dot while running. */
import { h } from "../lib/dom";

// The agent's status vocabulary (protocol/src/run_format/records.rs) plus `unknown`.
const KNOWN = new Set(["running", "finished", "failed", "crashed", "killed", "interrupted", "unreadable", "unknown"]);

export function statusBadge(status: string, reason?: string | null): HTMLElement {
  const s = KNOWN.has(status) ? status : "unknown";
  return h(
    "span",
    { class: `badge status-${s}`, title: reason ? `${status}: ${reason}` : status, dataset: { status: s } },
    s === "running" ? h("span", { class: "pulse", attrs: { "aria-hidden": "true" } }) : null,
    status,
  );
}

/** A small coloured dot (connected / disconnected). */
export function dot(on: boolean, label: string): HTMLElement {
  return h("span", { class: `dot ${on ? "dot-on" : "dot-off"}`, title: label, attrs: { "aria-label": label } });
}
