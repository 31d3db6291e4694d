/**
 * The Artifacts tab of a run's page: the artifact versions the run produced and used (each a
 * link to the Artifacts page), the lineage graph around the run, and the run's upstream assets
 * (`assets.json` of upstream 0.6/0.7: code snapshot, config files, datasets, pretrained models,
 * outputs), each saved file with a Download link to its blob. It refreshes while a sync brings
 * changes, like the Artifacts page.
 */
import { artifactsApi, type RunAsset, type RunDetail, type VersionRef } from "../api";
import { lineageGraph } from "../components/lineage_graph";
import { code, h, message, replace } from "../lib/dom";
import { formatBytes, formatNumber, formatTime, formatValue } from "../lib/format";
import { versionLink } from "./artifacts";
import { onStoreChanged } from "./page";

function versionsTable(list: VersionRef[], empty: string): HTMLElement {
  if (list.length === 0) return message("empty", empty);
  return h(
    "table",
    { class: "data run-versions" },
    h("thead", {}, h("tr", {}, ...["Version", "Type", "Size", "Created", "Remote · host"].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      ...list.map((v) =>
        h(
          "tr",
          { dataset: { artifact: `${v.remote}/${v.type}/${v.name}`, version: String(v.version) } },
          h("td", {}, versionLink(v), v.removed ? h("span", { class: "muted small" }, " (gone from its server)") : null),
          h("td", {}, v.type),
          h("td", { class: "num" }, formatBytes(v.size)),
          h("td", {}, formatTime(v.created_at)),
          h("td", {}, v.remote, v.host ? h("span", { class: "muted" }, ` · ${v.host}`) : null),
        ),
      ),
    ),
  );
}

/** Columns shown for each kind of upstream asset, in order, where present. */
const ASSET_COLUMNS: Record<string, string[]> = {
  datasets: ["name", "context", "uri", "description", "saved", "file_count", "total_size_bytes", "fingerprint"],
  pretrained: ["name", "source_type", "path_or_uri", "description", "saved", "file_count", "total_size_bytes", "fingerprint"],
  outputs: ["key", "name", "kind", "path", "saved", "archived_at", "fingerprint"],
};

/** Column headers of the asset tables. */
const ASSET_HEADERS: Record<string, string> = {
  file_count: "files",
  total_size_bytes: "size",
  path_or_uri: "path or URI",
  source_type: "source",
  archived_at: "archived",
};

function cell(key: string, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (key === "total_size_bytes" && typeof v === "number") return formatBytes(v);
  if ((key === "archived_at" || key === "created_at") && typeof v === "number") return formatTime(v);
  if (key === "fingerprint" && typeof v === "string") return v.slice(0, 12);
  return formatValue(v);
}

function assetTable(kind: string, items: Record<string, unknown>[]): HTMLElement {
  const cols = (ASSET_COLUMNS[kind] ?? []).filter((c) => items.some((i) => i[c] !== undefined && i[c] !== null));
  return h(
    "table",
    { class: "data assets-table", dataset: { assets: kind } },
    h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", {}, ASSET_HEADERS[c] ?? c.replace(/_/g, " "))))),
    h("tbody", {}, ...items.map((i) => h("tr", {}, ...cols.map((c) => h("td", {}, cell(c, i[c])))))),
  );
}

const CATEGORY_TITLES: Record<string, string> = {
  code: "Code snapshot",
  dataset: "Datasets",
  pretrained: "Pretrained models",
  output: "Outputs",
};

/** A file name for the browser's download of an asset. */
function downloadName(e: RunAsset): string {
  const base = (e.detail && e.category === "output" ? e.detail : e.name).split(/[\\/]/).pop() ?? e.name;
  return base || e.sha256 || "asset";
}

/** What can be done with an asset's bytes: a download link, or why there is none. */
function assetAction(e: RunAsset): HTMLElement {
  if (!e.saved) return h("span", { class: "muted" }, "recorded only (not saved)");
  if (e.download) {
    return h("a", { href: e.download, class: "asset-download", attrs: { download: downloadName(e) }, dataset: { sha256: e.sha256 ?? "" } }, "Download");
  }
  if (e.kind === "dir") {
    return h("span", { class: "muted", title: e.archive ?? "" }, `directory${e.file_count != null ? ` of ${formatNumber(e.file_count)} files` : ""} · `, code("runicorn-hub fetch assets"));
  }
  return h("span", { class: "muted", title: e.archive ?? "" }, "saved on the server (a rolling copy) · ", code("runicorn-hub fetch assets"));
}

/** The code snapshot's download link (after its description), when it has one. */
function codeAction(entries: RunAsset[]): (string | HTMLElement)[] {
  const code = entries.find((e) => e.category === "code");
  if (!code?.download) return [];
  return [" · ", h("span", { class: "asset-entry", dataset: { category: code.category, name: code.name } }, assetAction(code))];
}

/** Saved and recorded assets of every category, one table each, with download links. */
function assetEntriesTables(entries: RunAsset[]): HTMLElement[] {
  const parts: HTMLElement[] = [];
  for (const category of ["code", "dataset", "pretrained", "output"]) {
    const items = entries.filter((e) => e.category === category);
    if (items.length === 0) continue;
    parts.push(
      h("h3", {}, CATEGORY_TITLES[category] ?? category),
      h(
        "table",
        { class: "data asset-files", dataset: { category } },
        h("thead", {}, h("tr", {}, ...["Name", "Detail", "Kind", "Size", "SHA-256", ""].map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          ...items.map((e) =>
            h(
              "tr",
              { class: "asset-entry", dataset: { category: e.category, name: e.name } },
              h("td", { title: e.uri ?? "" }, e.name),
              h("td", {}, [e.detail, e.mode].filter(Boolean).join(" · ")),
              h("td", {}, e.kind),
              h("td", { class: "num" }, e.size != null ? formatBytes(e.size) : ""),
              h("td", { class: "mono", title: e.sha256 ?? "" }, e.sha256 ? e.sha256.slice(0, 12) : ""),
              h("td", {}, assetAction(e)),
            ),
          ),
        ),
      ),
    );
  }
  return parts;
}

/** The upstream assets of a run, or null when it has none worth showing: with `entries` (the
 * API's flat list) each saved file has a Download link; the raw tables follow as details. */
export function assetsSection(assets: unknown, entries: RunAsset[] = []): HTMLElement | null {
  if (!assets || typeof assets !== "object") return null;
  const a = assets as Record<string, unknown>;
  const parts: HTMLElement[] = [];
  const code = a.code as Record<string, unknown> | undefined;
  const snapshot = code?.snapshot as Record<string, unknown> | undefined;
  if (snapshot) {
    parts.push(
      h("h3", {}, "Code snapshot"),
      h(
        "p",
        { class: "code-snapshot" },
        `${snapshot.saved === false ? "not saved" : `${String(snapshot.format ?? "zip")} saved`}`,
        snapshot.workspace_root ? ` from ${String(snapshot.workspace_root)}` : "",
        typeof snapshot.created_at === "number" ? ` at ${formatTime(snapshot.created_at)}` : "",
        typeof snapshot.fingerprint === "string" ? ` · ${snapshot.fingerprint.slice(0, 12)}` : "",
        ...codeAction(entries),
      ),
    );
  }
  const config = a.config as Record<string, unknown> | undefined;
  const files = Array.isArray(config?.config_files) ? (config!.config_files as unknown[]) : [];
  if (files.length > 0) parts.push(h("h3", {}, "Config files"), h("ul", {}, ...files.map((f) => h("li", {}, formatValue(f)))));
  const details: HTMLElement[] = [];
  for (const [kind, title] of [
    ["datasets", "Datasets"],
    ["pretrained", "Pretrained models"],
    ["outputs", "Outputs"],
  ] as const) {
    const items = Array.isArray(a[kind]) ? (a[kind] as unknown[]).filter((x): x is Record<string, unknown> => !!x && typeof x === "object") : [];
    if (items.length > 0) details.push(h("h3", {}, title), assetTable(kind, items));
  }
  if (entries.length > 0) {
    parts.push(...assetEntriesTables(entries.filter((e) => e.category !== "code")));
    if (details.length > 0) parts.push(h("details", { class: "assets-raw" }, h("summary", {}, "As recorded in assets.json"), ...details));
  } else {
    parts.push(...details);
  }
  if (parts.length === 0) return null;
  return h("section", { class: "run-assets" }, h("h2", {}, "Assets"), ...parts);
}

/** The tab's element; it loads when built and again whenever a sync changes the store (while
 * the run's page is open: `gone` ends that), redrawing only when what it shows changed. */
export function runArtifactsTab(detail: RunDetail, gone?: AbortSignal): HTMLElement {
  const el = h("div", { class: "run-artifacts" }, message("loading", "Loading artifacts…"));
  let shown = "";
  let loading = false;
  let again = false;
  const load = async (): Promise<void> => {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      const [mine, graph] = await Promise.all([artifactsApi.ofRun(detail.key, gone), artifactsApi.lineage({ run: detail.key }, gone)]);
      const text = JSON.stringify([mine, graph]);
      if (gone?.aborted || text === shown) return;
      shown = text;
      const hasLinks = mine.produced.length + mine.used.length > 0;
      replace(
        el,
        h("h2", {}, "Produced"),
        versionsTable(mine.produced, "This run logged no artifact versions."),
        h("h2", {}, "Used"),
        versionsTable(mine.used, "This run used no artifact versions."),
        hasLinks ? h("h2", {}, "Lineage") : null,
        hasLinks ? lineageGraph(graph) : null,
        assetsSection(mine.assets, mine.asset_entries),
      );
    } catch (e) {
      if (gone?.aborted || (e as Error).name === "AbortError") return;
      shown = "";
      replace(el, message("error", `Could not load the run's artifacts: ${(e as Error).message}`));
    } finally {
      loading = false;
      if (again && !gone?.aborted) {
        again = false;
        void load();
      }
    }
  };
  void load();
  const off = onStoreChanged(() => void load());
  gone?.addEventListener("abort", off, { once: true });
  return el;
}
