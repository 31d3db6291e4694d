/**
 * The Files/Images tab of a run: the run's images as thumbnails (from the run's detail, as
 * before), and the tree of all its files from `GET /api/runs/{run}/files` (paged through up to
 * [`MAX_FILES_SHOWN`]), each with its size, whether the hub has cached it, a download link and
 * "open": images shown inline, text and JSON shown as text (at most the first
 * [`MAX_PREVIEW_BYTES`]). Every name and every byte of a file goes in as a text node.
 */
import { api, type RunDetail, type RunFile } from "../api";
import { h, message, replace } from "../lib/dom";
import { formatBytes, formatNumber } from "../lib/format";
import { mediaPanels } from "../components/media_panel";
import { imageGrid, IMAGE, skippedFiles } from "./run_info";

/** Files asked for per request. */
export const FILES_PAGE = 1000;
/** Most files the tree lists; the rest are counted in a note. */
export const MAX_FILES_SHOWN = 20_000;
/** Most bytes of a text file shown inline. */
export const MAX_PREVIEW_BYTES = 1024 * 1024;
/** Folders start open when the run has at most this many files. */
const OPEN_ALL_BELOW = 50;

const TEXT = /\.(txt|log|out|err|json|jsonl|ya?ml|toml|ini|cfg|conf|csv|tsv|md|rst|py|sh|xml)$/i;

/** A folder of the tree: sub-folders and files, each sorted by name. */
export interface FileFolder {
  name: string;
  /** `a/b` for the folder `b` inside `a`; empty for the run's own folder. */
  path: string;
  folders: FileFolder[];
  files: RunFile[];
  /** Files inside, at any depth. */
  count: number;
  /** Their bytes. */
  size: number;
}

/** The tree of a flat list of run files (paths relative to the run, `/`-separated). */
export function buildFileTree(files: readonly RunFile[]): FileFolder {
  const root: FileFolder = { name: "", path: "", folders: [], files: [], count: 0, size: 0 };
  const index = new Map<string, FileFolder>([["", root]]);
  for (const f of files) {
    const parts = f.path.split("/");
    parts.pop();
    let folder = root;
    const chain = [root];
    for (const part of parts) {
      const path = folder.path ? `${folder.path}/${part}` : part;
      let next = index.get(path);
      if (!next) {
        next = { name: part, path, folders: [], files: [], count: 0, size: 0 };
        index.set(path, next);
        folder.folders.push(next);
      }
      folder = next;
      chain.push(folder);
    }
    folder.files.push(f);
    for (const c of chain) {
      c.count += 1;
      c.size += f.size;
    }
  }
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  for (const folder of index.values()) {
    folder.folders.sort((a, b) => byName(a.name, b.name));
    folder.files.sort((a, b) => byName(a.path, b.path));
  }
  return root;
}

/** The last segment of a path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** What "open" does with a file. */
export function previewKind(path: string): "image" | "text" | "none" {
  if (IMAGE.test(path)) return "image";
  if (TEXT.test(path)) return "text";
  return "none";
}

/** The tab: images as before, then the tree and the viewer. */
export function filesTab(d: RunDetail): HTMLElement {
  const tree = h("div", { class: "file-tree" }, message("loading", "Listing files…"));
  const viewer = h("div", { class: "file-view" });
  const images = d.files.filter((f) => IMAGE.test(f.path));
  const media = h("div", { class: "media-box" }, message("loading", "Loading images…"));
  const el = h(
    "div",
    { class: "tab-files" },
    images.length ? h("h3", {}, "Images") : null,
    images.length ? media : null,
    h("h3", {}, "Files"),
    skippedFiles(d),
    tree,
    viewer,
  );
  void loadTree(d.key, tree, viewer);
  // Images by key with step and caption; the plain grid when the media route cannot answer.
  if (images.length)
    api.media(d.key).then(
      (a) => replace(media, mediaPanels(a)),
      () => replace(media, imageGrid(images)),
    );
  return el;
}

async function loadTree(key: number, tree: HTMLElement, viewer: HTMLElement): Promise<void> {
  const files: RunFile[] = [];
  let total = 0;
  try {
    do {
      const page = await api.files(key, { limit: FILES_PAGE, offset: files.length });
      total = page.total;
      files.push(...page.files);
      if (page.files.length === 0) break;
    } while (files.length < Math.min(total, MAX_FILES_SHOWN));
  } catch (e) {
    replace(tree, message("error", `Could not list the run's files: ${(e as Error).message}`));
    return;
  }
  if (total === 0) {
    replace(tree, message("empty", "This run has no files."));
    return;
  }
  const root = buildFileTree(files.slice(0, MAX_FILES_SHOWN));
  const cached = files.filter((f) => f.cached).length;
  const hidden = total - Math.min(files.length, MAX_FILES_SHOWN);
  replace(
    tree,
    h(
      "p",
      { class: "small muted file-count" },
      `${formatNumber(total)} file${total === 1 ? "" : "s"}, ${formatBytes(root.size)}${hidden > 0 ? " listed" : ""}; ${formatNumber(cached)} cached on this hub`,
    ),
    folderList(root, total <= OPEN_ALL_BELOW, viewer),
    hidden > 0 ? h("p", { class: "small muted" }, `${formatNumber(hidden)} more not shown`) : null,
  );
}

function folderList(folder: FileFolder, open: boolean, viewer: HTMLElement): HTMLElement {
  const ul = h("ul", { class: "file-list" });
  for (const sub of folder.folders) {
    const details = h(
      "details",
      { class: "file-folder", dataset: { path: sub.path } },
      h("summary", {}, h("span", { class: "file-name" }, `${sub.name}/`), h("span", { class: "small muted" }, ` ${formatNumber(sub.count)} files, ${formatBytes(sub.size)}`)),
    );
    details.open = open;
    // Built when first opened: a folder of thousands of files costs nothing until then.
    let built = false;
    const build = () => {
      if (built || !details.open) return;
      built = true;
      details.appendChild(folderList(sub, open, viewer));
    };
    details.addEventListener("toggle", build);
    build();
    ul.appendChild(h("li", {}, details));
  }
  for (const f of folder.files) ul.appendChild(fileRow(f, viewer));
  return ul;
}

function fileRow(f: RunFile, viewer: HTMLElement): HTMLElement {
  const kind = previewKind(f.path);
  const open = h("button", { type: "button", class: "btn file-open" }, "open");
  open.disabled = kind === "none";
  if (kind === "none") open.title = "No preview for this kind of file: download it";
  open.addEventListener("click", () => void showFile(f, kind, viewer));
  const download = h("a", { class: "file-download", href: f.url, download: baseName(f.path) }, "download");
  return h(
    "li",
    { class: "file-row", dataset: { path: f.path } },
    h("span", { class: "file-name" }, baseName(f.path)),
    h("span", { class: "small muted file-size" }, ` ${formatBytes(f.size)} `),
    h(
      "span",
      { class: `small file-cached ${f.cached ? "is-cached" : "not-cached"}`, title: f.cached ? "a copy is on this hub" : "fetched from its server when opened" },
      f.cached ? "● cached" : "○ not cached",
    ),
    " ",
    open,
    " ",
    download,
  );
}

/** What the Files tab says when a file is not cached and its server cannot be reached. */
export const OFFLINE_NOT_CACHED =
  "Not available offline: this run's server cannot be reached and the hub has no copy of this file. It opens once the server is back.";

/** The error message of an API answer, or its status. */
async function failure(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body?.error?.code === "remote_offline") return OFFLINE_NOT_CACHED;
    if (body?.error?.message) return body.error.message;
  } catch {
    // not JSON: the status says enough
  }
  return `${res.status} ${res.statusText}`;
}

/** At most `limit` bytes of a response body; the rest is not read. */
async function firstBytes(res: Response, limit: number): Promise<Uint8Array> {
  const out = new Uint8Array(limit);
  let n = 0;
  const reader = res.body?.getReader();
  if (!reader) return new Uint8Array(await res.arrayBuffer()).slice(0, limit);
  while (n < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, limit - n);
    out.set(value.subarray(0, take), n);
    n += take;
  }
  await reader.cancel().catch(() => undefined);
  return out.slice(0, n);
}

async function showFile(f: RunFile, kind: "image" | "text" | "none", viewer: HTMLElement): Promise<void> {
  const title = h("h4", { class: "file-view-title" }, f.path);
  if (kind === "image") {
    const img = h("img", { src: f.url, alt: f.path, class: "file-view-image" });
    img.addEventListener("error", () => replace(viewer, title, message("error", f.cached ? "Could not show this image." : OFFLINE_NOT_CACHED)));
    replace(viewer, title, img);
    return;
  }
  replace(viewer, title, message("loading", "Loading…"));
  let res: Response;
  try {
    res = await fetch(f.url, { credentials: "same-origin" });
  } catch {
    replace(viewer, title, message("error", "Could not reach the hub. Is `runicorn-hub` still running?"));
    return;
  }
  if (res.status === 503) {
    const why = await failure(res);
    replace(viewer, title, message("error", why === OFFLINE_NOT_CACHED ? why : `Could not open ${f.path}: ${why}`));
    return;
  }
  if (!res.ok) {
    replace(viewer, title, message("error", `Could not open ${f.path}: ${await failure(res)}`));
    return;
  }
  const bytes = await firstBytes(res, MAX_PREVIEW_BYTES);
  const cut = f.size > bytes.length;
  let text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (!cut && /\.json$/i.test(f.path)) {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // shown as it is
    }
  }
  replace(
    viewer,
    title,
    cut ? h("p", { class: "small muted file-cut" }, `First ${formatBytes(bytes.length)} of ${formatBytes(f.size)} shown; download the file for all of it.`) : null,
    h("pre", { class: "file-text" }, text),
  );
}
