/**
 * Whether a run's numbers are current: the state of its remote as the API reports it
 * (`remote_state`, `remote_heard_at` of a `Run`), as a badge ("offline · last heard 2 min ago";
 * a remote known only from imported bundles: "imported · bundle of 2026-12-01", a neutral badge
 * rather than a warning, since nothing is broken) and as the class of a live dot (green only while the hub follows the remote and is connected).
 * Used by the runs table and the run page header. Also a run's duration as far as the hub knows
 * it: until it ended whatever its status, else until now or until its remote was last heard.
 */
import type { RemoteState, Run } from "../api";
import { h } from "./dom";
import { formatAgo, formatDate, formatTime } from "./format";

/** Whether a run's writer is at work: `running`, or `stalled` (alive, but making no new steps). */
export function isLiveStatus(status: string): boolean {
  return status === "running" || status === "stalled";
}

/** The fields of a run this module reads. */
export type Liveness = Pick<Run, "remote" | "remote_state" | "remote_heard_at" | "status">;

/** What each state is called on a badge. */
export const STATE_LABELS: Record<RemoteState, string> = {
  live: "live",
  offline: "offline",
  paused: "paused",
  not_followed: "not followed",
  imported: "imported",
  removed: "remote removed",
};

/** What each state means, for the badge's tooltip. */
function explain(run: Liveness): string {
  const remote = run.remote;
  switch (run.remote_state) {
    case "live":
      return `The hub follows ${remote} and is connected.`;
    case "offline":
      return `The hub lost its connection to ${remote} and keeps retrying; what is shown may be out of date.`;
    case "paused":
      return `${remote} is paused: the hub does not sync it until it is resumed (Remotes page, or \`runicorn-hub remotes resume ${remote}\`).`;
    case "not_followed":
      return `No hub process follows ${remote} now: start \`runicorn-hub ui\` (or \`runicorn-hub connect\`) to sync it live.`;
    case "imported":
      return `${remote} is known only from imported bundles: its runs are as the newest bundle carried them. Import a newer bundle to update them, or give it a link with \`runicorn-hub connect USER@HOST --name ${remote}\` to sync it live.`;
    case "removed":
      return `${remote} was removed from the hub; its runs are kept as they were last synced.`;
  }
}

/** What follows a state's label: when the hub last heard from the remote, or for an imported
 * remote the date of its newest bundle (an import sets the last-heard time to it); `null` for a
 * removed remote. */
function stateDetail(state: RemoteState, heardAt: number | null, now: number): string | null {
  if (state === "removed") return null;
  if (state === "imported") return heardAt === null ? "from a bundle" : `bundle of ${formatDate(heardAt)}`;
  return `last heard ${formatAgo(heardAt, now)}`;
}

/** A state's label and detail as one line: `offline · last heard 2 min ago`. */
export function stateText(state: RemoteState, heardAt: number | null, now: number = Date.now() / 1000): string {
  const label = STATE_LABELS[state] ?? state;
  const detail = stateDetail(state, heardAt, now);
  return detail === null ? label : `${label} · ${detail}`;
}

/** The badge's text: `offline · last heard 2 min ago`, `imported · bundle of 2026-12-01`
 * (`removed` names no time). */
export function livenessText(run: Liveness, now: number = Date.now() / 1000): string {
  return stateText(run.remote_state, run.remote_heard_at, now);
}

/** The tooltip's last sentence: when the hub last heard from the remote (for an imported one,
 * when its newest bundle was made); empty when never. */
function heardSentence(state: RemoteState, heard: number | null): string {
  if (heard === null) return "";
  return state === "imported" ? ` Newest bundle made ${formatTime(heard)}.` : ` Last heard ${formatTime(heard)}.`;
}

/** A badge saying the run's remote is not live; `null` when it is. Its text says when the hub
 * last heard from the remote; {@link refreshLiveness} keeps that current. */
export function livenessBadge(run: Liveness, now: number = Date.now() / 1000): HTMLElement | null {
  if (run.remote_state === "live") return null;
  const heard = run.remote_heard_at;
  return h(
    "span",
    {
      class: `liveness-badge liveness-${run.remote_state}`,
      title: `${explain(run)}${heardSentence(run.remote_state, heard)}`,
      dataset: {
        remoteState: run.remote_state,
        heardAt: heard === null ? "" : String(heard),
      },
    },
    livenessText(run, now),
  );
}

/** Updates the "last heard … ago" of every liveness badge under `root` to `now` (an imported or
 * removed remote's text does not age). */
export function refreshLiveness(root: ParentNode, now: number = Date.now() / 1000): void {
  for (const el of root.querySelectorAll<HTMLElement>(".liveness-badge")) {
    const state = el.dataset.remoteState as RemoteState | undefined;
    if (!state || state === "removed" || state === "imported") continue;
    const heardAt = el.dataset.heardAt ? Number(el.dataset.heardAt) : null;
    el.textContent = stateText(state, heardAt, now);
  }
}

/** The class of a run's live dot: `live-dot on` (green) while its remote is live and the run
 * runs, `live-dot` (grey) otherwise, plus `live-dot-<state>`. */
export function liveDotClass(run: Liveness): string {
  const on = run.remote_state === "live" && isLiveStatus(run.status);
  return `live-dot live-dot-${run.remote_state}${on ? " on" : ""}`;
}

/** A live dot element for a run (see {@link liveDotClass}), labelled for screen readers. */
export function liveDot(run: Liveness): HTMLElement {
  const label = run.remote_state === "live" ? `${run.remote} is live` : livenessText(run);
  return h("span", { class: liveDotClass(run), title: label, attrs: { "aria-label": label, role: "img" } });
}

/** The fields {@link runDurationSoFar} reads; `status_record` (a run's detail) is optional. */
export type DurationFields = Pick<Run, "created_at" | "ended_at" | "status" | "remote_state" | "remote_heard_at"> & {
  status_record?: unknown;
  heartbeat_at?: number | null;
};

/** When a run ended: its `ended_at`, else (it ended without saying so: crashed, killed) the
 * `ended_at` or last heartbeat of its `status.json` (from the run's detail, or the listing's
 * `heartbeat_at`); `null` while it runs or when unknown. */
export function runEndedAt(run: DurationFields): number | null {
  if (run.ended_at !== null) return run.ended_at;
  if (isLiveStatus(run.status)) return null;
  const record = run.status_record as { heartbeat_at?: unknown; ended_at?: unknown } | null | undefined;
  const t = record?.ended_at ?? record?.heartbeat_at ?? run.heartbeat_at;
  return typeof t === "number" && Number.isFinite(t) ? t : null;
}

/** A run's duration: until it ended, whatever its status; while it runs, until `now`, or until
 * the hub last heard from its remote when that is not live (what is known, not a guess). */
export function runDurationSoFar(run: DurationFields, now: number = Date.now() / 1000): number | null {
  if (run.created_at === null) return null;
  const end = runEndedAt(run);
  if (end !== null) return end - run.created_at;
  if (!isLiveStatus(run.status)) return null;
  const until = run.remote_state === "live" ? now : (run.remote_heard_at ?? now);
  return Math.max(0, until - run.created_at);
}
