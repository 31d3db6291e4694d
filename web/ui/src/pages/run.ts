/**
 * A run's page (`#/run/<ref>?tab=…`, where `<ref>` is a run reference: a key, a run id or
 * `REMOTE/RUN_ID`): the header with the editable alias, tags and notes, and
 * the tabs Charts | System | Logs | Summary | Config | Environment | Files | Artifacts. While the run runs, its live
 * stream feeds the charts, the log and the header (points, last step, duration). Whether its
 * remote is live shows in the header (a badge saying when the hub last heard from it, the live
 * dot grey otherwise), polled from `/api/remotes` so an outage shows within seconds. The run's
 * alerts (acknowledged ones too) show under the header when it has any.
 */
import { alertsApi, api, ApiError, openLive, type RunCandidate, type Run, type RunDetail } from "../api";
import { statusBadge } from "../components/badge";
import { onAlertsChanged, setUnacked } from "../lib/alerts";
import { h, message, replace } from "../lib/dom";
import { formatAgo, formatDuration, formatNumber, formatTime } from "../lib/format";
import { isLiveStatus, liveDot, livenessBadge, refreshLiveness, runDurationSoFar } from "../lib/liveness";
import { replaceHash, runHash } from "../router";
import { alertsTable } from "./alerts";
import type { Page } from "./page";
import { RunCharts } from "./run_charts";
import { runArtifactsTab } from "./run_artifacts";
import { filesTab } from "./run_files";
import { keyValueTable } from "./run_info";
import { RunLogs } from "./run_logs";
import { RunSystem } from "./run_system";
import { runHost, runName } from "./runs";

const TABS = [
  ["charts", "Charts"],
  ["system", "System"],
  ["logs", "Logs"],
  ["summary", "Summary"],
  ["config", "Config"],
  ["environment", "Environment"],
  ["files", "Files/Images"],
  ["artifacts", "Artifacts"],
] as const;
type Tab = (typeof TABS)[number][0];

/** The runs an ambiguous run reference may mean, as links (`null` for any other error). Each
 * is named `REMOTE/RUN_ID`, or by its key where that is not enough (one remote holding the run id
 * twice); `href` says where a link goes (default: the run's page). */
export function candidateLinks(
  e: unknown,
  href: (ref: string, candidate: RunCandidate) => string = (ref) => runHash(ref),
): HTMLElement | null {
  if (!(e instanceof ApiError) || e.candidates.length === 0) return null;
  const name = (c: RunCandidate) => `${c.remote}/${c.run_id}`;
  const items = e.candidates.map((c) => {
    const unique = e.candidates.filter((o) => name(o) === name(c)).length === 1;
    const ref = unique ? name(c) : String(c.key);
    return h("li", {}, h("a", { href: href(ref, c), class: "candidate", dataset: { key: String(c.key) } }, name(c)), ` (key ${c.key})`);
  });
  return h("div", { class: "candidates" }, h("p", {}, "Which run? The reference names several:"), h("ul", {}, ...items));
}

export function runPage(ref: string, params: URLSearchParams): Page {
  const el = h("div", { class: "page run-page" }, message("loading", "Loading run…"));
  let closeLive: (() => void) | null = null;
  let charts: RunCharts | null = null;
  let system: RunSystem | null = null;
  let destroyed = false;
  const timers: ReturnType<typeof setInterval>[] = [];
  const gone = new AbortController();
  let stopAlerts: (() => void) | null = null;

  void (async () => {
    let detail: RunDetail;
    try {
      detail = await api.run(ref);
    } catch (e) {
      if (destroyed) return;
      const candidates = candidateLinks(e);
      const why = candidates ? `${ref} names more than one run.` : `Could not load run ${ref}: ${(e as Error).message}`;
      replace(el, message("error", why), candidates, h("a", { href: "#/runs" }, "Back to runs"));
      return;
    }
    if (destroyed) return;
    // From here on the run is named by its key; the URL keeps the reference it was opened by.
    const id = detail.key;
    const header = h("header", { class: "run-header" });
    const tabBar = h("nav", { class: "tabs", attrs: { role: "tablist" } });
    const panel = h("div", { class: "tab-panel" });
    const alertBox = h("section", { class: "run-alerts" });
    replace(el, header, alertBox, tabBar, panel);
    const loadAlerts = async () => {
      try {
        const answer = await alertsApi.list({ all: true, run: id }, gone.signal);
        if (destroyed) return;
        if (answer.alerts.length === 0) {
          replace(alertBox);
          return;
        }
        const ack = async (alertId: number) => {
          try {
            setUnacked((await alertsApi.ack(alertId)).unacked);
          } catch {
            // Shown as it is; the next load says what is true.
          }
          await loadAlerts();
        };
        replace(alertBox, h("h2", {}, "Alerts"), alertsTable(answer.alerts, (a) => void ack(a.id), false));
      } catch {
        // The run's page works without its alerts.
      }
    };
    stopAlerts = onAlertsChanged(() => void loadAlerts());
    void loadAlerts();

    charts = new RunCharts(detail);
    const logs = new RunLogs(id);
    system = new RunSystem(detail);
    const panels = new Map<Tab, HTMLElement>();
    const panelFor = (t: Tab): HTMLElement => {
      let p = panels.get(t);
      if (p) return p;
      if (t === "charts") p = charts!.el;
      else if (t === "system") p = system!.el;
      else if (t === "logs") p = logs.el;
      else if (t === "summary") p = keyValueTable(detail.summary, "No summary values.");
      else if (t === "config") p = keyValueTable(detail.config, "No config.");
      else if (t === "environment") p = keyValueTable(detail.environment, "No environment was recorded.");
      else if (t === "artifacts") p = runArtifactsTab(detail, gone.signal);
      else p = filesTab(detail);
      panels.set(t, p);
      return p;
    };
    let tab: Tab = (TABS.find(([t]) => t === params.get("tab"))?.[0] ?? "charts") as Tab;
    const showTab = (t: Tab) => {
      tab = t;
      replaceHash(runHash(ref, t));
      for (const b of tabBar.querySelectorAll<HTMLButtonElement>("button")) {
        const on = b.dataset.tab === t;
        b.classList.toggle("active", on);
        b.setAttribute("aria-selected", String(on));
      }
      replace(panel, panelFor(t));
      if (t === "charts") charts!.show();
      if (t === "logs") logs.show();
      if (t === "system") system!.show();
    };
    for (const [t, label] of TABS) {
      const b = h("button", { type: "button", class: "tab", dataset: { tab: t }, attrs: { role: "tab" } }, label);
      b.addEventListener("click", () => showTab(t));
      tabBar.appendChild(b);
    }

    const renderHeader = () => renderRunHeader(header, detail, (run) => {
      detail = { ...detail, ...run };
      charts?.setDetail(detail);
      system?.setDetail(detail);
      renderHeader();
    });
    renderHeader();
    showTab(tab);

    // The remote's state, polled: an outage shows within seconds (the live stream says nothing
    // when the remote goes quiet). Updated in place: an edit in the header may be open.
    const pollRemote = async () => {
      try {
        const r = (await api.remotes()).remotes.find((x) => x.name === detail.remote);
        if (destroyed) return;
        const state = r ? r.state : "removed";
        const heard = r ? r.heard_at : detail.remote_heard_at;
        if (state !== detail.remote_state || heard !== detail.remote_heard_at) {
          detail = { ...detail, remote_state: state, remote_heard_at: heard };
          updateLiveness(header, detail);
        }
      } catch {
        /* the hub is unreachable: main.ts's connection dot says so */
      }
    };
    timers.push(setInterval(() => void pollRemote(), 3000));
    timers.push(
      setInterval(() => {
        refreshLiveness(header);
        const cell = header.querySelector('[data-fact="duration"] .fact-value');
        if (cell) cell.textContent = formatDuration(runDurationSoFar(detail));
      }, 1000),
    );

    if (isLiveStatus(detail.status)) {
      closeLive = openLive(
        id,
        { after_step: detail.last_step ?? undefined, log_offset: detail.log_bytes ?? undefined },
        {
          metrics: (m) => {
            charts?.appendLive(m.series);
            // Keep the header's last step and points current without re-rendering it (an edit
            // may be open): each live point is a new step of its key.
            let last = detail.last_step ?? -Infinity;
            let added = 0;
            for (const s of m.series) {
              added += s.steps.length;
              for (const st of s.steps) if (st > last) last = st;
            }
            detail = { ...detail, last_step: Number.isFinite(last) ? last : detail.last_step, points: detail.points + added };
            const set = (fact: string, text: string) => {
              const cell = header.querySelector(`[data-fact="${fact}"] .fact-value`);
              if (cell) cell.textContent = text;
            };
            set("last_step", formatNumber(detail.last_step));
            set("points", formatNumber(detail.points));
          },
          log: (l) => logs.live(l),
          run: (r) => {
            detail = { ...detail, ...r };
            charts?.setDetail(detail);
            system?.setDetail(detail);
            renderHeader();
          },
        },
      );
    }
  })();

  return {
    el,
    destroy: () => {
      destroyed = true;
      gone.abort();
      stopAlerts?.();
      for (const t of timers) clearInterval(t);
      closeLive?.();
      charts?.destroy();
      system?.destroy();
    },
  };
}

/** Puts the run's liveness (dot, badge, "last heard" fact, status pulse) in the header. */
function updateLiveness(header: HTMLElement, d: RunDetail): void {
  header.querySelector(".run-live-dot")?.replaceWith(runLiveDot(d));
  const slot = header.querySelector(".run-liveness");
  if (slot) replace(slot, livenessBadge(d));
  const heard = header.querySelector('[data-fact="heard"]');
  if (heard) {
    heard.toggleAttribute("hidden", d.remote_state === "live");
    // An imported remote was last heard of through its newest bundle: said so.
    const label = heard.querySelector(".fact-label");
    if (label) label.textContent = d.remote_state === "imported" ? "Bundle made" : "Last heard";
    const value = heard.querySelector(".fact-value");
    if (value) {
      value.textContent = d.remote_heard_at === null ? "never" : `${formatAgo(d.remote_heard_at)} (${formatTime(d.remote_heard_at)})`;
    }
  }
  header.querySelector(".title-row .badge")?.classList.toggle("stale", d.remote_state !== "live");
}

function runLiveDot(d: RunDetail): HTMLElement {
  const dot = liveDot(d);
  dot.classList.add("run-live-dot");
  return dot;
}

/** The header: name (editable), status, where and when, tags and notes (editable). */
function renderRunHeader(header: HTMLElement, d: RunDetail, onSaved: (r: Run) => void): void {
  const errorBox = h("div", { class: "header-error" });
  const fail = (e: unknown) => replace(errorBox, message("error", `Not saved: ${(e as Error).message}`));
  const save = async (body: Parameters<typeof api.patchRun>[1]) => {
    try {
      onSaved(await api.patchRun(d.key, body));
    } catch (e) {
      fail(e);
    }
  };

  // Alias: text with an edit button; an input while editing (Enter saves, Escape cancels).
  const title = h("h1", { class: "run-title" });
  const showTitle = () => {
    const edit = h("button", { type: "button", class: "btn small alias-edit", title: "Rename" }, "✎ Rename");
    edit.addEventListener("click", editTitle);
    replace(title, h("span", { class: "run-name" }, runName(d)), edit);
  };
  const editTitle = () => {
    const input = h("input", { type: "text", value: d.alias ?? "", class: "alias-input", maxLength: 200, placeholder: d.run_id, attrs: { "aria-label": "Alias" } });
    let done = false;
    const commit = async () => {
      if (done) return;
      done = true;
      const v = input.value.trim();
      if (v === (d.alias ?? "")) return showTitle();
      await save({ alias: v === "" ? null : v });
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") void commit();
      if (ev.key === "Escape") {
        done = true;
        showTitle();
      }
    });
    input.addEventListener("blur", () => void commit());
    replace(title, input);
    input.focus();
    input.select();
  };
  showTitle();

  // Tags: chips with a remove button, and an input that adds one on Enter.
  const tags = h("div", { class: "tags" });
  for (const t of d.tags) {
    const rm = h("button", { type: "button", class: "chip-x", title: `Remove tag ${t}`, attrs: { "aria-label": `Remove tag ${t}` } }, "×");
    rm.addEventListener("click", () => void save({ tags: d.tags.filter((x) => x !== t) }));
    tags.appendChild(h("span", { class: "tag chip" }, t, rm));
  }
  const addTag = h("input", { type: "text", class: "tag-input", placeholder: "add tag", maxLength: 100, attrs: { "aria-label": "Add tag" } });
  addTag.addEventListener("keydown", (ev) => {
    const v = addTag.value.trim();
    if (ev.key === "Enter" && v && !d.tags.includes(v)) void save({ tags: [...d.tags, v] });
  });
  tags.appendChild(addTag);

  // Notes: a textarea with a save button that wakes up on change.
  const notes = h("textarea", { class: "notes", value: d.notes ?? "", placeholder: "Notes", rows: 2, attrs: { "aria-label": "Notes" } });
  const saveNotes = h("button", { type: "button", class: "btn small", disabled: true }, "Save notes");
  notes.addEventListener("input", () => (saveNotes.disabled = notes.value === (d.notes ?? "")));
  saveNotes.addEventListener("click", () => void save({ notes: notes.value === "" ? null : notes.value }));

  const fact = (label: string, value: Node | string, id = "") =>
    h("div", { class: "fact", dataset: { fact: id } }, h("span", { class: "fact-label" }, label), h("span", { class: "fact-value" }, value));
  replace(
    header,
    h("div", { class: "crumbs small" }, h("a", { href: "#/runs" }, "Runs"), " / ", d.path ?? "", " / ", d.run_id),
    h("div", { class: "title-row" }, runLiveDot(d), title, statusBadge(d.status, d.reason), h("span", { class: "run-liveness" })),
    h(
      "div",
      { class: "facts" },
      fact("Key", String(d.key), "key"),
      fact("Run id", d.run_id),
      fact("Path", d.path ?? "–"),
      fact("Host", runHost(d)),
      fact("Started", formatTime(d.created_at)),
      fact("Ended", formatTime(d.ended_at)),
      fact("Duration", formatDuration(runDurationSoFar(d)), "duration"),
      fact("Last step", formatNumber(d.last_step), "last_step"),
      fact("Points", formatNumber(d.points), "points"),
      fact("Last heard", "", "heard"),
      d.reason ? fact("Reason", d.reason) : null,
      d.removed ? fact("Server", "gone from its server (kept by the hub)") : null,
      d.trashed_at ? fact("Recycle bin", `since ${formatTime(d.trashed_at)}`) : null,
      d.corrupt_lines ? fact("Corrupt lines", formatNumber(d.corrupt_lines)) : null,
    ),
    tags,
    h("div", { class: "notes-row" }, notes, saveNotes),
    errorBox,
  );
  updateLiveness(header, d);
}
