/**
 * The Artifacts page (`#/artifacts?type=&artifact=REMOTE/TYPE/NAME&version=N`): every artifact
 * of every remote by type, with its versions, aliases, sizes and the bytes dedup saves; one
 * artifact's versions (producing run, the runs that used it), a version's files with a Download
 * link each, and the lineage graph around that version. And the lineage page
 * (`#/lineage?run=…` or `?artifact=…&version=N`): the graph alone, larger.
 */
import { ApiError, artifactFileUrl, artifactsApi, type Artifact, type ArtifactDetail, type ArtifactsAnswer, type RunLink, type VersionRef } from "../api";
import { lineageGraph } from "../components/lineage_graph";
import { code, h, message, replace } from "../lib/dom";
import { formatBytes, formatNumber, formatTime } from "../lib/format";
import { artifactsHash, lineageHash, runHash } from "../router";
import { onStoreChanged, type Page } from "./page";

/** `REMOTE/TYPE/NAME` of an artifact (what `artifact=` takes). */
export function artifactRef(a: { remote: string; type: string; name: string }): string {
  return `${a.remote}/${a.type}/${a.name}`;
}

/** Splits `REMOTE/TYPE/NAME` (the name may hold no `/`; null when malformed). */
export function parseArtifactRef(text: string | null): { remote: string; type: string; name: string } | null {
  if (!text) return null;
  const parts = text.split("/");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return null;
  return { remote: parts[0]!, type: parts[1]!, name: parts[2]! };
}

/** `name:vN` with its aliases, linking to the version on the Artifacts page. */
export function versionLink(v: Pick<VersionRef, "remote" | "type" | "name" | "version" | "aliases">): HTMLElement {
  const aliases = v.aliases.length > 0 ? h("span", { class: "alias-list" }, ...v.aliases.map((a) => h("span", { class: "alias-chip" }, a))) : null;
  return h(
    "span",
    { class: "version-ref" },
    h("a", { href: artifactsHash({ remote: v.remote, artifactType: v.type, name: v.name, version: v.version }), class: "version-link" }, `${v.name}:v${v.version}`),
    aliases ? " " : null,
    aliases,
  );
}

/** A run a version names: a link to its page when the hub has it. */
export function runLink(l: RunLink): HTMLElement {
  const host = l.host ? ` on ${l.host}` : "";
  if (l.key !== null) return h("a", { href: runHash(l.key, "artifacts"), class: "run-link", title: `${l.dir}${host}` }, l.run_id);
  return h("span", { class: "muted", title: `${l.dir}${host}: not synced to the hub` }, `${l.run_id} (not in the hub)`);
}

type Sizes = { total_bytes: number; stored_bytes: number; saved_bytes: number; server_bytes: number | null; server_saved_bytes: number | null };

/** Bytes on the server after dedup: the agent's chunk-level measure when it sent one, else each
 * distinct content once (older agents). */
export function storedOnServer(a: Sizes): { stored: number; saved: number; chunkLevel: boolean } {
  if (a.server_bytes !== null && a.server_saved_bytes !== null) return { stored: a.server_bytes, saved: a.server_saved_bytes, chunkLevel: true };
  return { stored: a.stored_bytes, saved: a.saved_bytes, chunkLevel: false };
}

/** `12 %` of `whole` (nothing when whole is 0). */
function share(part: number, whole: number): string {
  return whole > 0 ? ` (${Math.round((100 * part) / whole)} %)` : "";
}

/** One artifact's (or, with `perArtifact`, a listing's) size, stored bytes and saving. */
export function sizes(a: Sizes & { server_measured_bytes?: number }, perArtifact = false): string {
  const s = storedOnServer(a);
  const base = s.chunkLevel && a.server_measured_bytes !== undefined ? a.server_measured_bytes : a.total_bytes;
  const how = s.chunkLevel ? (perArtifact ? "on the server (chunk-level dedup, per artifact)" : "on the server (chunk-level dedup)") : "stored (each distinct file once)";
  return `${formatBytes(a.total_bytes)} in all · ${formatBytes(s.stored)} ${how} · ${formatBytes(s.saved)} saved by dedup${share(s.saved, base)}`;
}

export function artifactsPage(params: URLSearchParams): Page {
  const el = h("div", { class: "page artifacts-page" }, message("loading", "Loading artifacts…"));
  let destroyed = false;
  const controller = new AbortController();
  const selected = parseArtifactRef(params.get("artifact"));
  const type = params.get("type") ?? "";
  const removed = params.get("removed") === "1";
  const versionParam = Number(params.get("version"));
  // What is on show, so a store change that left the artifacts alone redraws nothing (the page
  // keeps its scroll position and the graph does not flash).
  let shown = "";

  const load = async () => {
    try {
      if (selected) {
        const detail = await artifactsApi.detail(selected.remote, selected.type, selected.name, controller.signal);
        const text = JSON.stringify(detail);
        if (destroyed || text === shown) return;
        shown = text;
        await renderDetail(detail);
      } else {
        const list = await artifactsApi.list({ type: type || undefined, removed }, controller.signal);
        const all = type ? await artifactsApi.list({ removed }, controller.signal) : list;
        const text = JSON.stringify([list, all.types]);
        if (destroyed || text === shown) return;
        shown = text;
        renderList(list, all.types);
      }
    } catch (e) {
      if (destroyed || (e as Error).name === "AbortError") return;
      shown = "";
      const why = e instanceof ApiError && e.status === 404 ? e.message : `Could not load artifacts: ${(e as Error).message}`;
      replace(el, h("h1", {}, "Artifacts"), message("error", why, " ", h("a", { href: artifactsHash() }, "All artifacts")));
    }
  };

  const renderList = (list: ArtifactsAnswer, types: string[]) => {
    const chips = h(
      "nav",
      { class: "type-chips", attrs: { "aria-label": "Artifact types" } },
      h("a", { href: artifactsHash({ removed }), class: `type-chip${type ? "" : " active"}` }, "All types"),
      ...types.map((t) => h("a", { href: artifactsHash({ type: t, removed }), class: `type-chip${t === type ? " active" : ""}`, dataset: { type: t } }, t)),
      h("span", { class: "spacer" }),
      h(
        "a",
        { href: artifactsHash({ type: type || undefined, removed: !removed }), class: "removed-toggle small", title: "Artifacts deleted on their servers stay in the hub, like runs" },
        removed ? "Hide artifacts gone from their servers" : "Show artifacts gone from their servers",
      ),
    );
    if (list.artifacts.length === 0) {
      replace(
        el,
        h("h1", {}, "Artifacts"),
        chips,
        message("empty", "No artifacts yet. Log one with ", code("run.log_artifact(rn.Artifact(\"model\", type=\"model\"))"), "; it arrives with the next sync."),
      );
      return;
    }
    const versions = list.artifacts.reduce((n, a) => n + a.versions.length, 0);
    const summary = h(
      "p",
      { class: "artifacts-summary" },
      `${formatNumber(list.artifacts.length)} artifacts · ${formatNumber(versions)} versions · `,
      h("span", { class: "dedup-figures" }, sizes(list, true)),
    );
    const sections: HTMLElement[] = [];
    const byType = new Map<string, Artifact[]>();
    for (const a of list.artifacts) {
      if (!byType.has(a.type)) byType.set(a.type, []);
      byType.get(a.type)!.push(a);
    }
    for (const [t, items] of byType) {
      const rows = items.map((a) => {
        const newest = a.versions[0];
        return h(
          "tr",
          { class: `artifact-row${a.removed ? " removed" : ""}`, dataset: { artifact: artifactRef(a) } },
          h(
            "td",
            {},
            h("a", { href: artifactsHash({ remote: a.remote, artifactType: a.type, name: a.name }), class: "artifact-link" }, a.name),
            a.removed ? h("span", { class: "muted small" }, " (gone from its server)") : null,
            a.problem ? h("div", { class: "error-text small" }, a.problem) : null,
          ),
          h("td", {}, a.remote, a.host ? h("span", { class: "muted" }, ` · ${a.host}`) : null),
          h("td", { class: "num" }, formatNumber(a.versions.length)),
          h("td", {}, newest ? versionLink({ ...a, version: newest.version, aliases: newest.aliases }) : "—"),
          h("td", { class: "num" }, formatBytes(a.total_bytes)),
          h("td", { class: "num stored", title: storedOnServer(a).chunkLevel ? "Bytes on the server: distinct whole files and distinct chunks" : "Each distinct file once" }, formatBytes(storedOnServer(a).stored)),
          h("td", { class: "num saved" }, formatBytes(storedOnServer(a).saved), share(storedOnServer(a).saved, a.total_bytes)),
        );
      });
      sections.push(
        h(
          "section",
          { class: "artifact-type", dataset: { type: t } },
          h("h2", {}, t),
          h(
            "table",
            { class: "data artifacts-table" },
            h("thead", {}, h("tr", {}, ...["Name", "Remote · host", "Versions", "Newest", "Size", "On the server", "Saved by dedup"].map((c) => h("th", {}, c)))),
            h("tbody", {}, ...rows),
          ),
        ),
      );
    }
    replace(el, h("h1", {}, "Artifacts"), chips, summary, ...sections);
  };

  const renderDetail = async (d: ArtifactDetail) => {
    const a = d.artifact;
    const current = a.versions.find((v) => v.version === versionParam) ?? a.versions[0];
    const head = h(
      "header",
      { class: "artifact-header" },
      h("p", {}, h("a", { href: artifactsHash({ type: a.type }) }, `← ${a.type} artifacts`)),
      h("h1", {}, a.name, " ", h("span", { class: "type-badge" }, a.type)),
      h("p", { class: "muted" }, `${a.remote}${a.host ? ` · ${a.host}` : ""} · ${a.dir}`, a.removed ? " · gone from its server" : ""),
      a.problem ? message("error", `The agent could not read all of it: ${a.problem}`) : null,
      h("p", { class: "dedup-figures" }, sizes(a)),
    );
    const rows = a.versions.map((v) =>
      h(
        "tr",
        { class: `version-row${v === current ? " selected" : ""}`, dataset: { version: String(v.version) } },
        h("td", {}, h("a", { href: artifactsHash({ remote: a.remote, artifactType: a.type, name: a.name, version: v.version }), class: "version-link" }, `v${v.version}`)),
        h("td", {}, ...v.aliases.map((x) => h("span", { class: "alias-chip" }, x))),
        h("td", { class: "num" }, formatBytes(v.size)),
        h("td", { class: "num" }, formatNumber(v.file_count)),
        h("td", {}, formatTime(v.created_at)),
        h("td", { class: "produced-by" }, v.produced_by ? runLink(v.produced_by) : "—"),
        h("td", { class: "used-by" }, ...(v.used_by.length === 0 ? ["—"] : v.used_by.flatMap((u, i) => [i > 0 ? ", " : null, runLink(u)]))),
        h("td", {}, h("a", { href: lineageHash({ artifact: artifactRef(a), version: v.version }), class: "lineage-link" }, "Lineage")),
      ),
    );
    const versions = h(
      "table",
      { class: "data versions-table" },
      h("thead", {}, h("tr", {}, ...["Version", "Aliases", "Size", "Files", "Created", "Produced by", "Used by", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...rows),
    );
    const parts: (HTMLElement | null)[] = [head, h("h2", {}, "Versions"), versions];
    if (current) {
      const files = d.files.find((f) => f.version === current.version);
      const fileRows = (files?.files ?? []).map((f) =>
        h(
          "tr",
          { class: "artifact-file", dataset: { path: f.path } },
          h("td", {}, f.path),
          h("td", { class: "num" }, formatBytes(f.size)),
          h("td", { class: "mono", title: f.sha256 }, f.sha256.slice(0, 12)),
          h("td", {}, f.stored === "missing" ? h("span", { class: "error-text" }, "missing on the server") : f.stored),
          h("td", {}, f.stored === "missing" ? null : h("a", { href: artifactFileUrl(a.remote, a.type, a.name, current.version, f.path), class: "download-link", attrs: { download: f.path.split("/").pop() ?? f.path } }, "Download")),
        ),
      );
      parts.push(
        h("h2", {}, `Files of v${current.version}`),
        current.description ? h("p", {}, current.description) : null,
        fileRows.length > 0
          ? h("table", { class: "data files-table" }, h("thead", {}, h("tr", {}, ...["Path", "Size", "SHA-256", "Stored", ""].map((c) => h("th", {}, c)))), h("tbody", {}, ...fileRows))
          : message("empty", "This version holds no files."),
        files?.truncated ? h("p", { class: "muted small" }, `Only the first ${formatNumber(files.files.length)} of ${formatNumber(current.file_count)} files are listed.`) : null,
      );
      const refs = Array.isArray(current.references) ? (current.references as Record<string, unknown>[]) : [];
      if (refs.length > 0) {
        parts.push(
          h("h3", {}, "References"),
          h("ul", { class: "references" }, ...refs.map((r) => h("li", {}, String(r.uri ?? JSON.stringify(r))))),
        );
      }
      const graphBox = h("div", { class: "lineage-box" }, message("loading", "Loading lineage…"));
      parts.push(h("h2", {}, `Lineage of v${current.version}`), graphBox);
      replace(el, ...parts);
      try {
        const g = await artifactsApi.lineage({ artifact: artifactRef(a), version: current.version }, controller.signal);
        if (!destroyed) replace(graphBox, lineageGraph(g));
      } catch (e) {
        if (!destroyed && (e as Error).name !== "AbortError") replace(graphBox, message("error", `Could not load the lineage: ${(e as Error).message}`));
      }
    } else {
      parts.push(message("empty", "This artifact has no versions left."));
      replace(el, ...parts);
    }
  };

  void load();
  const off = onStoreChanged(() => void load());
  return {
    el,
    destroy: () => {
      destroyed = true;
      controller.abort();
      off();
    },
  };
}

/** `#/lineage?run=…` or `?artifact=REMOTE/TYPE/NAME&version=N`. */
export function lineagePage(params: URLSearchParams): Page {
  const el = h("div", { class: "page lineage-page" }, message("loading", "Loading lineage…"));
  const controller = new AbortController();
  const run = params.get("run");
  const artifact = params.get("artifact");
  const version = Number(params.get("version"));
  void (async () => {
    try {
      const g = run ? await artifactsApi.lineage({ run }, controller.signal) : await artifactsApi.lineage({ artifact: artifact ?? "", version }, controller.signal);
      const title = run ? `Lineage of run ${run}` : `Lineage of ${artifact?.split("/").pop() ?? ""}:v${version}`;
      replace(el, h("h1", {}, title), lineageGraph(g));
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      replace(el, h("h1", {}, "Lineage"), message("error", (e as Error).message));
    }
  })();
  return { el, destroy: () => controller.abort() };
}
