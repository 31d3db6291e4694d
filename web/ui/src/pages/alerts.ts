/**
 * The alerts page (`#/alerts`): what agents raised about runs (stalled, crashed, failed, a NaN
 * or infinite watched metric, idle GPUs), newest first: kind, run (a link to it), remote, when,
 * message, and Acknowledge per alert or for all; acknowledged ones on request (`?all=1`). The
 * button to enable browser notifications lives here too. Also `alertsList`, the same rows for
 * one run's page.
 */
import { alertsApi, ApiError, type Alert } from "../api";
import { dataTable, type Column } from "../components/table";
import { ALERT_KIND_LABELS, enableNotifications, notificationState, onAlertsChanged, setUnacked } from "../lib/alerts";
import { h, message, replace } from "../lib/dom";
import { formatAgo, formatTime } from "../lib/format";
import { buildHash, runHash } from "../router";
import type { Page } from "./page";

/** The table of `alerts`; `onAck` acknowledges one. `withRun`: a column naming each run. */
export function alertsTable(alerts: Alert[], onAck: (a: Alert) => void, withRun = true): HTMLElement {
  const columns: Column<Alert>[] = [
    {
      id: "kind",
      label: "Kind",
      cell: (a) => h("span", { class: `alert-kind alert-kind-${a.kind}`, title: a.alert_id }, ALERT_KIND_LABELS[a.kind] ?? a.kind),
    },
  ];
  if (withRun) {
    columns.push(
      { id: "run", label: "Run", cell: (a) => h("a", { href: runHash(a.run), class: "alert-run" }, a.alias ? `${a.alias} · ${a.run_ref}` : a.run_ref) },
      { id: "remote", label: "Remote", cell: (a) => (a.host && a.host !== a.remote ? `${a.remote} (${a.host})` : a.remote) },
    );
  }
  columns.push(
    { id: "when", label: "When", cell: (a) => h("span", { title: formatTime(a.raised_at) }, formatAgo(a.raised_at)) },
    { id: "message", label: "Message", className: "alert-message", cell: (a) => a.message },
    {
      id: "ack",
      label: "",
      cell: (a) => {
        if (a.acked_at !== null) return h("span", { class: "muted small", title: formatTime(a.acked_at) }, "acknowledged");
        const b = h("button", { type: "button", class: "btn small alert-ack", dataset: { alert: String(a.id) } }, "Acknowledge");
        b.addEventListener("click", () => onAck(a));
        return b;
      },
    },
  );
  return dataTable({ columns, rows: alerts, rowKey: (a) => a.id, rowClass: (a) => (a.acked_at === null ? "alert-open" : "alert-acked") });
}

export function alertsPage(params: URLSearchParams): Page {
  const showAll = params.get("all") === "1";
  const box = h("div", {}, message("loading", "Loading alerts…"));
  const notice = h("div", { class: "alert-notice", attrs: { role: "status", "aria-live": "polite" } });
  const ackAll = h("button", { type: "button", class: "btn alert-ack-all" }, "Acknowledge all");
  const notifyBtn = h("button", { type: "button", class: "btn alert-notify" });
  const toggle = h("a", { href: buildHash("alerts", { all: !showAll }), class: "btn" }, showAll ? "Hide acknowledged" : "Show acknowledged");
  const el = h(
    "div",
    { class: "page alerts-page" },
    h("h1", {}, "Alerts"),
    h("div", { class: "toolbar alerts-toolbar" }, ackAll, toggle, notifyBtn),
    notice,
    box,
  );
  const controller = new AbortController();

  const say = (kind: "ok" | "error", text: string) => replace(notice, h("p", { class: kind === "error" ? "error-text" : "muted" }, text));

  const notifyLabel = () => {
    const state = notificationState();
    notifyBtn.textContent =
      state === "granted"
        ? "Notifications on"
        : state === "denied"
          ? "Notifications blocked by the browser"
          : state === "unsupported"
            ? "Notifications not supported"
            : "Enable notifications";
    notifyBtn.disabled = state !== "default";
    notifyBtn.title = state === "granted" ? "A notification shows for each new alert while a dashboard page is open" : "";
  };
  notifyBtn.addEventListener("click", async () => {
    await enableNotifications();
    notifyLabel();
  });
  notifyLabel();

  const act = async (what: () => Promise<{ acked: number; unacked: number }>) => {
    try {
      const r = await what();
      say("ok", `Acknowledged ${r.acked} alert${r.acked === 1 ? "" : "s"}.`);
      setUnacked(r.unacked);
    } catch (e) {
      say("error", e instanceof ApiError ? e.message : `Failed: ${(e as Error).message}`);
      await load();
    }
  };
  ackAll.addEventListener("click", () => void act(() => alertsApi.ackAll()));

  async function load(): Promise<void> {
    try {
      const answer = await alertsApi.list({ all: showAll }, controller.signal);
      ackAll.disabled = answer.unacked === 0;
      if (answer.alerts.length === 0) {
        replace(box, message("empty", showAll ? "No alerts yet." : "No alerts to acknowledge."));
      } else {
        replace(box, alertsTable(answer.alerts, (a) => void act(() => alertsApi.ack(a.id))));
      }
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      replace(box, message("error", e instanceof ApiError ? e.message : `Failed: ${(e as Error).message}`));
    }
  }
  const stop = onAlertsChanged(() => void load());
  void load();
  return {
    el,
    destroy: () => {
      stop();
      controller.abort();
    },
  };
}
