/**
 * The fleet page (`#/fleet`): every remote's host and its GPUs at a glance. "N of M GPUs free"
 * on top, then a card per remote (host, state badge, last heard, load) with each GPU as a row:
 * utilisation and memory bars, temperature, power, and the run holding it as a link to its
 * run page; free GPUs marked (`GET /api/fleet`: no compute process, utilisation below 10 %).
 * Refreshes while open, on every store change and every few seconds.
 */
import { api, type FleetGpu, type FleetRemote, type FleetRun, type Fleet } from "../api";
import { code, h, message, replace } from "../lib/dom";
import { formatAgo, formatNumber, formatTime } from "../lib/format";
import { STATE_LABELS } from "../lib/liveness";
import { runHash } from "../router";
import { onStoreChanged, type Page } from "./page";

/** How often the page asks again while open (the hub samples hosts about every 10 s). */
const REFRESH_MS = 3000;

const gib = (mib: number) => `${(mib / 1024).toFixed(1)} GiB`;

/** A horizontal bar filled to `percent` (0–100), with its text beside it. */
function bar(kind: "util" | "mem", percent: number | null, text: string, title: string): HTMLElement {
  const fill = percent === null ? 0 : Math.max(0, Math.min(100, percent));
  return h(
    "div",
    { class: `fleet-bar fleet-bar-${kind}`, title, attrs: { role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(fill)), "aria-label": title } },
    h("span", { class: "fleet-bar-track" }, h("span", { class: "fleet-bar-fill", style: { width: `${fill}%` } })),
    h("span", { class: "fleet-bar-text" }, text),
  );
}

function runLink(run: FleetRun): HTMLElement {
  const name = run.alias ?? run.path;
  // Before the run is synced it has no key; its reference names it once it is.
  const target = run.key ?? run.ref;
  return h(
    "a",
    { href: runHash(target), class: "fleet-run", title: `${run.ref} · ${run.dir}`, dataset: { runId: run.run_id } },
    name,
    h("span", { class: "muted small" }, ` ${run.run_id}`),
  );
}

function gpuRow(gpu: FleetGpu): HTMLElement {
  const util = gpu.util_percent;
  const used = gpu.mem_used_mib;
  const total = gpu.mem_total_mib;
  const memPercent = used !== null && total !== null && total > 0 ? (100 * used) / total : null;
  const others = gpu.processes.filter((p) => p.run === null).length;
  const holder = gpu.free
    ? h("span", { class: "fleet-free" }, "free")
    : h(
        "span",
        {},
        ...gpu.runs.flatMap((r, i) => [i > 0 ? ", " : null, runLink(r)]),
        others > 0 ? h("span", { class: "muted small" }, `${gpu.runs.length > 0 ? " + " : ""}${others} other process${others === 1 ? "" : "es"}`) : null,
        gpu.runs.length === 0 && others === 0 ? h("span", { class: "muted small" }, "busy, no compute process") : null,
      );
  return h(
    "tr",
    { class: `fleet-gpu${gpu.free ? " is-free" : ""}`, dataset: { gpu: String(gpu.index), free: String(gpu.free) } },
    h("td", { class: "num" }, String(gpu.index)),
    h("td", { class: "fleet-gpu-name", title: gpu.uuid }, gpu.name),
    h("td", {}, bar("util", util, util === null ? "n/a" : `${Math.round(util)} %`, "GPU utilisation")),
    h("td", {}, bar("mem", memPercent, used === null ? "n/a" : total === null ? gib(used) : `${gib(used)} / ${gib(total)}`, "GPU memory used")),
    h("td", { class: "num" }, gpu.temp_c === null ? "–" : `${Math.round(gpu.temp_c)} °C`),
    h("td", { class: "num" }, gpu.power_w === null ? "–" : `${Math.round(gpu.power_w)} W`),
    h("td", { class: "fleet-holder" }, holder),
  );
}

function remoteCard(r: FleetRemote): HTMLElement {
  const load =
    r.cpu_count !== null && r.load_avg !== null
      ? `${r.cpu_count} CPUs · load ${r.load_avg[0]?.toFixed(2) ?? "–"}`
      : null;
  const memory =
    r.mem_total_mib !== null && r.mem_available_mib !== null
      ? `memory ${gib(r.mem_available_mib)} free of ${gib(r.mem_total_mib)}`
      : null;
  const head = h(
    "header",
    { class: "fleet-card-head" },
    h("h2", {}, r.name),
    h("span", { class: `fleet-state fleet-state-${r.state}`, dataset: { state: r.state } }, STATE_LABELS[r.state] ?? r.state),
    h("span", { class: "muted" }, r.host ?? "host unknown"),
    h("span", { class: "spacer" }),
    h("span", { class: "muted small", title: formatTime(r.heard_at) }, `last heard ${formatAgo(r.heard_at)}`),
  );
  const facts = r.sampled
    ? h(
        "div",
        { class: "muted small fleet-facts" },
        [`sampled ${formatAgo(r.sampled_at)}`, load, memory].filter((x) => x !== null).join(" · "),
        r.stale ? h("span", { class: "warning-text" }, " · this sample is old") : null,
      )
    : null;
  let body: HTMLElement;
  if (!r.sampled) {
    body = message("empty", "No host sample yet: its agent reports GPUs from the version with the ", code("host"), " capability on, with the next sync.");
  } else if (r.gpus.length === 0) {
    body = r.gpu_error
      ? h("p", { class: "error-text fleet-gpu-error" }, `GPUs unreadable: ${r.gpu_error}`)
      : message("empty", "No GPUs on this host (no nvidia-smi).");
  } else {
    body = h(
      "table",
      { class: "data fleet-gpus" },
      h("thead", {}, h("tr", {}, ...["GPU", "Name", "Utilisation", "Memory", "Temp", "Power", "Held by"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...r.gpus.map(gpuRow)),
    );
  }
  const free = r.gpus.length > 0 ? h("span", { class: "fleet-card-free" }, `${r.free_gpus} of ${r.gpus.length} free`) : null;
  return h(
    "section",
    { class: "fleet-card", dataset: { remote: r.name, state: r.state } },
    head,
    facts,
    free,
    r.gpu_error && r.gpus.length > 0 ? h("p", { class: "error-text" }, r.gpu_error) : null,
    body,
  );
}

export function fleetPage(): Page {
  const summary = h("p", { class: "fleet-summary", attrs: { role: "status", "aria-live": "polite" } });
  const box = h("div", {}, message("loading", "Loading the fleet…"));
  const el = h("div", { class: "page fleet-page" }, h("h1", {}, "Fleet"), summary, box);

  const render = (fleet: Fleet) => {
    const t = fleet.totals;
    replace(
      summary,
      h("strong", { class: "fleet-free-count" }, `${formatNumber(t.free_gpus)} of ${formatNumber(t.gpus)} GPUs free`),
      h("span", { class: "muted" }, ` on ${formatNumber(t.remotes)} remote${t.remotes === 1 ? "" : "s"} · ${fleet.free_rule}`),
    );
    if (fleet.remotes.length === 0) {
      replace(box, message("empty", "No remotes yet — connect a server with ", code("runicorn-hub connect user@host"), "."));
      return;
    }
    replace(box, h("div", { class: "fleet-cards" }, ...fleet.remotes.map(remoteCard)));
  };

  let busy = false;
  const load = async () => {
    if (busy) return;
    busy = true;
    try {
      render(await api.fleet());
    } catch (e) {
      replace(box, message("error", `Could not load the fleet: ${(e as Error).message}`));
    } finally {
      busy = false;
    }
  };
  void load();
  const stop = onStoreChanged(() => void load());
  const timer = setInterval(() => void load(), REFRESH_MS);
  return {
    el,
    destroy: () => {
      stop();
      clearInterval(timer);
    },
  };
}
