/**
 * The remotes page (`#/remotes`): each server the hub syncs, its state (live, offline, paused,
 * not followed, imported from bundles, removed) and which hub process follows it, what it holds, and managing it:
 * "sync now" ("retry now" while offline), pause / resume, rename, remove (its runs kept, or
 * deleted too), each asking first where it cannot be undone.
 */
import { api, ApiError, remotesApi, type Remote } from "../api";
import { code, h, message, replace } from "../lib/dom";
import { formatAgo, formatDuration, formatNumber, formatTime } from "../lib/format";
import { STATE_LABELS, stateText } from "../lib/liveness";
import { buildHash } from "../router";
import { onStoreChanged, type Page } from "./page";

/** What a row shows in place of its buttons while the user confirms or types. */
type Editing = { name: string; kind: "rename" | "remove" | "forget" } | null;

export function remotesPage(): Page {
  const box = h("div", {}, message("loading", "Loading remotes…"));
  const notice = h("div", { class: "remote-notice", attrs: { role: "status", "aria-live": "polite" } });
  const el = h("div", { class: "page remotes-page" }, h("h1", {}, "Remotes"), notice, box);
  let remotes: Remote[] = [];
  let editing: Editing = null;

  const say = (kind: "ok" | "error", text: string) =>
    replace(notice, h("p", { class: kind === "error" ? "error-text" : "muted" }, text));

  /** Runs one management request, says what happened, reloads. */
  const act = async (what: () => Promise<unknown>, done: string) => {
    try {
      await what();
      say("ok", done);
    } catch (e) {
      say("error", e instanceof ApiError ? e.message : `Failed: ${(e as Error).message}`);
    }
    editing = null;
    await load();
  };

  const stateCell = (r: Remote) => {
    const imported = r.state === "imported";
    // An imported remote's label carries its newest bundle's date (an import sets `heard_at`).
    const label = imported ? stateText(r.state, r.heard_at) : (STATE_LABELS[r.state] ?? r.state);
    // A paused or removed remote's follower lets it go at its next heartbeat (2 s).
    const who =
      r.state === "paused"
        ? "paused: nobody syncs it"
        : r.state === "removed"
          ? "removed: its runs are kept"
          : imported
            ? h("span", {}, "known only from imported bundles; ", code(`runicorn-hub connect USER@HOST --name ${r.name}`), " syncs it live")
            : r.follower
              ? `followed by ${r.follower} · ${r.connected ? "connected" : "connection lost, retrying"}`
              : "no hub process follows it";
    return h(
      "td",
      { class: "remote-state", dataset: { state: r.state } },
      h("span", { class: `live-dot live-dot-${r.state}${r.state === "live" ? " on" : ""}`, attrs: { "aria-hidden": "true" } }),
      " ",
      h("span", { class: "remote-state-label", title: imported && r.heard_at !== null ? `Newest bundle made ${formatTime(r.heard_at)}` : "" }, label),
      h("div", { class: "muted small" }, who),
      r.state !== "live" && r.state !== "removed" && !imported && r.heard_at !== null
        ? h("div", { class: "muted small", title: formatTime(r.heard_at) }, `last heard ${formatAgo(r.heard_at)}`)
        : null,
    );
  };

  const button = (label: string, onClick: () => void, extra: { danger?: boolean; title?: string } = {}) => {
    const b = h("button", { type: "button", class: `btn small${extra.danger ? " danger" : ""}`, title: extra.title ?? "", dataset: { action: label } }, label);
    b.addEventListener("click", onClick);
    return b;
  };

  const actions = (r: Remote) => {
    const runs = formatNumber(r.runs);
    if (editing?.name === r.name && editing.kind === "rename") {
      const input = h("input", { type: "text", value: r.name, class: "rename-input", maxLength: 64, attrs: { "aria-label": `New name for ${r.name}` } });
      const save = () => {
        const to = input.value.trim();
        if (!to || to === r.name) {
          editing = null;
          void load();
          return;
        }
        void act(() => remotesApi.rename(r.name, to), `Renamed ${r.name} to ${to}.`);
      };
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") save();
        if (ev.key === "Escape") {
          editing = null;
          void load();
        }
      });
      queueMicrotask(() => {
        input.focus();
        input.select();
      });
      return h("td", { class: "remote-actions" }, input, button("Save", save), button("Cancel", () => ((editing = null), void load())));
    }
    if (editing?.name === r.name && editing.kind === "remove") {
      return h(
        "td",
        { class: "remote-actions confirm" },
        h("p", { class: "small" }, `Remove ${r.name}? Nothing will sync it any more. Its ${runs} runs can stay (marked as from a removed remote) or be deleted for good.`),
        button("Remove, keep runs", () => void act(() => remotesApi.remove(r.name, false), `Removed ${r.name}; its runs stay.`)),
        button(`Remove and delete ${runs} runs`, () => void act(() => remotesApi.remove(r.name, true), `Removed ${r.name} and deleted its runs.`), { danger: true }),
        button("Cancel", () => ((editing = null), void load())),
      );
    }
    if (editing?.name === r.name && editing.kind === "forget") {
      return h(
        "td",
        { class: "remote-actions confirm" },
        h("p", { class: "small" }, `Delete the ${runs} runs of ${r.name} from the hub for good (metrics, logs, notes)?`),
        button(`Delete ${runs} runs`, () => void act(() => remotesApi.remove(r.name, true), `Deleted ${r.name} and its runs.`), { danger: true }),
        button("Cancel", () => ((editing = null), void load())),
      );
    }
    const edit = (kind: NonNullable<Editing>["kind"]) => () => {
      editing = { name: r.name, kind };
      render();
    };
    if (r.state === "removed") {
      return h("td", { class: "remote-actions" }, button("Delete runs", edit("forget"), { danger: true, title: `Delete the runs kept of ${r.name}` }));
    }
    const sync =
      r.state === "offline"
        ? button("Retry now", () => void act(() => remotesApi.syncNow(r.name), `Asked ${r.follower ?? "its follower"} to reconnect to ${r.name} now.`), { title: "Reconnect without waiting" })
        : r.state === "live"
          ? button("Sync now", () => void act(() => remotesApi.syncNow(r.name), `Asked ${r.follower ?? "its follower"} to sync ${r.name} now.`))
          : null;
    // Nothing follows an imported remote, so there is nothing to pause (a paused one can resume).
    return h(
      "td",
      { class: "remote-actions" },
      sync,
      r.paused
        ? button("Resume", () => void act(() => remotesApi.resume(r.name), `Resumed ${r.name}; a running hub follows it again within seconds.`))
        : r.state === "imported"
          ? null
          : button("Pause", () => void act(() => remotesApi.pause(r.name), `Paused ${r.name}; nothing syncs it until it is resumed.`)),
      button("Rename", edit("rename")),
      button("Remove", edit("remove"), { danger: true }),
    );
  };

  const row = (r: Remote) =>
    h(
      "tr",
      { dataset: { remote: r.name, state: r.state }, class: r.state === "removed" ? "remote-removed" : "" },
      stateCell(r),
      h("td", {}, h("a", { href: buildHash("runs", { remote: r.name }) }, r.name)),
      h("td", {}, r.address ?? "–"),
      h("td", {}, r.agent_host ?? "–", r.agent_root ? h("div", { class: "muted small" }, r.agent_root) : null),
      h("td", { title: formatTime(r.last_sync_at) }, formatAgo(r.last_sync_at)),
      h("td", { class: "num" }, r.lag_seconds === null ? "–" : formatDuration(r.lag_seconds)),
      h("td", { class: "num" }, formatNumber(r.runs)),
      h("td", { class: "num" }, formatNumber(r.points)),
      problems(r),
      actions(r),
    );

  // An error, else the warning of a sync that left items out (each with its reason).
  const problems = (r: Remote) => {
    if (r.last_error) return h("td", { class: "error-text" }, r.last_error);
    if (!r.warning) return h("td", { class: "muted" }, "none");
    const more = r.skipped_items - r.skipped.length;
    return h(
      "td",
      { class: "warning-text" },
      h(
        "details",
        {},
        h("summary", {}, r.warning),
        h(
          "ul",
          { class: "small" },
          ...r.skipped.map((s) => h("li", {}, `${s.kind} ${s.name} (${s.by_hub ? "hub" : "agent"}): ${s.reason}`)),
          more > 0 ? h("li", {}, `… and ${formatNumber(more)} more`) : null,
          r.skipped_files > 0 ? h("li", {}, `${formatNumber(r.skipped_files)} files left out of run manifests`) : null,
        ),
      ),
    );
  };

  const render = () => {
    if (remotes.length === 0) {
      replace(box, message("empty", "No remotes yet — connect a server with ", code("runicorn-hub connect user@host"), "."));
      return;
    }
    replace(
      box,
      h(
        "table",
        { class: "data remotes-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["State", "Name", "Address", "Agent", "Last sync", "Lag", "Runs", "Points", "Problems", "Manage"].map((t) =>
              h("th", { class: ["Lag", "Runs", "Points"].includes(t) ? "num" : "" }, t),
            ),
          ),
        ),
        h("tbody", {}, ...remotes.map(row)),
      ),
    );
  };

  const load = async () => {
    try {
      remotes = (await api.remotes()).remotes;
    } catch (e) {
      replace(box, message("error", `Could not load remotes: ${(e as Error).message}`));
      return;
    }
    // An open rename or confirmation is not swept away by a refresh.
    if (editing === null) render();
  };
  void load();
  const stop = onStoreChanged(() => void load());
  const timer = setInterval(() => void load(), 3000);
  return {
    el,
    destroy: () => {
      stop();
      clearInterval(timer);
    },
  };
}
