/**
 * The Artifacts tab of a run's page: the artifact versions the run produced and used (each a
 * link to the Artifacts page), the lineage graph around the run, and the run's upstream assets
 * (`assets.json` of upstream 0.6/0.7: code snapshot, config files, datasets, pretrained models,
 * outputs).
 */
import { artifactsApi, type RunDetail, type VersionRef } from "../api";
import { lineageGraph } from "../components/lineage_graph";
import { h, message, replace } from "../lib/dom";
import { formatBytes, formatTime, formatValue } from "../lib/format";
import { versionLink } from "./artifacts";

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

/** The upstream assets of a run, or null when it has none worth showing. */
export function assetsSection(assets: unknown): HTMLElement | null {
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
      ),
    );
  }
  const config = a.config as Record<string, unknown> | undefined;
  const files = Array.isArray(config?.config_files) ? (config!.config_files as unknown[]) : [];
  if (files.length > 0) parts.push(h("h3", {}, "Config files"), h("ul", {}, ...files.map((f) => h("li", {}, formatValue(f)))));
  for (const [kind, title] of [
    ["datasets", "Datasets"],
    ["pretrained", "Pretrained models"],
    ["outputs", "Outputs"],
  ] as const) {
    const items = Array.isArray(a[kind]) ? (a[kind] as unknown[]).filter((x): x is Record<string, unknown> => !!x && typeof x === "object") : [];
    if (items.length > 0) parts.push(h("h3", {}, title), assetTable(kind, items));
  }
  if (parts.length === 0) return null;
  return h("section", { class: "run-assets" }, h("h2", {}, "Assets"), ...parts);
}

/** The tab's element; it loads when built. */
export function runArtifactsTab(detail: RunDetail): HTMLElement {
  const el = h("div", { class: "run-artifacts" }, message("loading", "Loading artifacts…"));
  void (async () => {
    try {
      const [mine, graph] = await Promise.all([artifactsApi.ofRun(detail.key), artifactsApi.lineage({ run: detail.key })]);
      const hasLinks = mine.produced.length + mine.used.length > 0;
      replace(
        el,
        h("h2", {}, "Produced"),
        versionsTable(mine.produced, "This run logged no artifact versions."),
        h("h2", {}, "Used"),
        versionsTable(mine.used, "This run used no artifact versions."),
        hasLinks ? h("h2", {}, "Lineage") : null,
        hasLinks ? lineageGraph(graph) : null,
        assetsSection(mine.assets),
      );
    } catch (e) {
      replace(el, message("error", `Could not load the run's artifacts: ${(e as Error).message}`));
    }
  })();
  return el;
}
