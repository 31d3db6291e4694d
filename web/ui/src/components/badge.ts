/** The run status badge: one colour per status, a pulsing dot while running. */
import { RUN_STATUSES, type RunStatus } from "../api";
import { h } from "../lib/dom";

/** Whether `status` is in the vocabulary (generated from Rust's `RunStatus::ALL`). */
export function isRunStatus(status: string): status is RunStatus {
  return (RUN_STATUSES as readonly string[]).includes(status);
}

/** The status a badge shows: a value outside the vocabulary is shown as `unknown`. */
export function badgeStatus(status: string): RunStatus {
  return isRunStatus(status) ? status : "unknown";
}

/** The badge's class for a status: styles.css colours each one (tests/unit/badge.test.ts). */
export function badgeClass(status: RunStatus): string {
  return `status-${status}`;
}

export function statusBadge(status: string, reason?: string | null): HTMLElement {
  const s = badgeStatus(status);
  return h(
    "span",
    { class: `badge ${badgeClass(s)}`, title: reason ? `${status}: ${reason}` : status, dataset: { status: s } },
    s === "running" ? h("span", { class: "pulse", attrs: { "aria-hidden": "true" } }) : null,
    status,
  );
}

/** A small coloured dot (connected / disconnected). */
export function dot(on: boolean, label: string): HTMLElement {
  return h("span", { class: `dot ${on ? "dot-on" : "dot-off"}`, title: label, attrs: { "aria-label": label } });
}
