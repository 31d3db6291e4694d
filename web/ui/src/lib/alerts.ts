/**
 * The dashboard's view of alerts across pages: the unacknowledged count the top bar's badge
 * shows (from `GET /api/alerts`, then every `alerts` event of `/api/events` and every
 * acknowledgement made here), and a browser notification for each new alert while the page is
 * open, once the user enabled them (the Notification API asks for permission on a click).
 */
import type { Alert, AlertsEvent } from "../api";
import { runHash } from "../router";

type Listener = (unacked: number) => void;

let unacked = 0;
const listeners = new Set<Listener>();

/** The number of alerts not acknowledged, as last heard. */
export function unackedCount(): number {
  return unacked;
}

/** Sets the count (an answer of the API said it) and tells every listener. */
export function setUnacked(n: number): void {
  unacked = n;
  for (const l of listeners) l(n);
  window.dispatchEvent(new Event("runicorn:alerts"));
}

/** Calls `fn` with the count whenever it changes; returns the way to stop. */
export function onUnacked(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Runs `fn` when alerts arrived or were acknowledged (pages showing alerts reload). */
export function onAlertsChanged(fn: () => void): () => void {
  const handler = () => fn();
  window.addEventListener("runicorn:alerts", handler);
  return () => window.removeEventListener("runicorn:alerts", handler);
}

/** Whether this browser can show notifications at all. */
export function notificationsSupported(): boolean {
  return typeof window.Notification === "function";
}

/** `granted`, `denied`, `default` (not asked yet) or `unsupported`. */
export function notificationState(): NotificationPermission | "unsupported" {
  return notificationsSupported() ? Notification.permission : "unsupported";
}

/** Asks the browser for permission (must run from a click); the resulting state. */
export async function enableNotifications(): Promise<NotificationPermission | "unsupported"> {
  if (!notificationsSupported()) return "unsupported";
  if (Notification.permission === "default") await Notification.requestPermission();
  return Notification.permission;
}

/** The words a notification or a list shows for an alert's kind. */
export const ALERT_KIND_LABELS: Record<string, string> = {
  stalled: "Stalled",
  crashed: "Crashed",
  failed: "Failed",
  nonfinite: "NaN / Inf",
  gpu_idle: "GPUs idle",
};

/** The run an alert concerns, as a person names it. */
export function alertRunName(a: Alert): string {
  return a.alias ? `${a.alias} (${a.run_ref})` : a.run_ref;
}

/** Alerts raised longer ago than this (seconds) are listed but never notified about (the hub
 * reports them as new only when raised within a day, docs/api.md). */
const NOTIFY_WITHIN_S = 24 * 3600;

/** One browser notification per alert; clicking it opens the run. */
function notify(alerts: Alert[]): void {
  if (notificationState() !== "granted") return;
  const since = Date.now() / 1000 - NOTIFY_WITHIN_S;
  for (const a of alerts.filter((x) => x.raised_at >= since)) {
    const n = new Notification(`Runicorn: ${ALERT_KIND_LABELS[a.kind] ?? a.kind} — ${alertRunName(a)}`, {
      body: a.message,
      tag: `runicorn-alert-${a.id}`,
    });
    n.onclick = () => {
      window.focus();
      location.hash = runHash(a.run);
    };
  }
}

/** What main.ts does with each `alerts` event of the event stream. */
export function alertsEvent(event: AlertsEvent): void {
  setUnacked(event.unacked);
  notify(event.new);
}
