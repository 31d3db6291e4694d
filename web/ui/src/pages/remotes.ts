/** The remotes page (`#/remotes`): each server the hub syncs, its link state and what it holds. */
import { api, type Remote } from "../api";
import { dot } from "../components/badge";
import { code, h, message, replace } from "../lib/dom";
import { formatAgo, formatDuration, formatNumber, formatTime } from "../lib/format";
import { buildHash } from "../router";
import { onStoreChanged, type Page } from "./page";

export function remotesPage(): Page {
  const box = h("div", {}, message("loading", "Loading remotes…"));
  const el = h("div", { class: "page remotes-page" }, h("h1", {}, "Remotes"), box);

  const row = (r: Remote) =>
    h(
      "tr",
      { dataset: { remote: r.name } },
      h("td", {}, dot(r.connected, r.connected ? "connected" : "disconnected"), " ", r.connected ? "connected" : "disconnected"),
      h("td", {}, h("a", { href: buildHash("runs", { remote: r.name }) }, r.name)),
      h("td", {}, r.address ?? "–"),
      h("td", {}, r.agent_host ?? "–", r.agent_root ? h("div", { class: "muted small" }, r.agent_root) : null),
      h("td", { title: formatTime(r.last_sync_at) }, formatAgo(r.last_sync_at)),
      h("td", { class: "num" }, r.lag_seconds === null ? "–" : formatDuration(r.lag_seconds)),
      h("td", { class: "num" }, formatNumber(r.runs)),
      h("td", { class: "num" }, formatNumber(r.points)),
      problems(r),
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

  const load = async () => {
    try {
      const { remotes } = await api.remotes();
      if (remotes.length === 0) {
        replace(box, message("empty", "No remotes yet — connect a server with ", code("runicorn-hub connect user@host"), "."));
        return;
      }
      replace(
        box,
        h(
          "table",
          { class: "data" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["State", "Name", "Address", "Agent", "Last sync", "Lag", "Runs", "Points", "Problems"].map((t) =>
                h("th", { class: ["Lag", "Runs", "Points"].includes(t) ? "num" : "" }, t),
              ),
            ),
          ),
          h("tbody", {}, ...remotes.map(row)),
        ),
      );
    } catch (e) {
      replace(box, message("error", `Could not load remotes: ${(e as Error).message}`));
    }
  };
  void load();
  const stop = onStoreChanged(() => void load());
  const timer = setInterval(() => void load(), 5000);
  return {
    el,
    destroy: () => {
      stop();
      clearInterval(timer);
    },
  };
}
