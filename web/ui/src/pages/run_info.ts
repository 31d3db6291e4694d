/** The Summary, Config and Environment tabs of a run (read-only views), and the image grid and
 * skipped-files note the Files/Images tab (`run_files.ts`) shows. */
import type { RunDetail, RunFile } from "../api";
import { h, message } from "../lib/dom";
import { flatten, formatNumber, formatValue } from "../lib/format";

/** A two-column table of an object's flattened keys (anything else shows `empty`). */
export function keyValueTable(obj: unknown, empty: string): HTMLElement {
  const flat = flatten(obj ?? {});
  const keys = Object.keys(flat).sort((a, b) => a.localeCompare(b));
  if (keys.length === 0) return message("empty", empty);
  return h(
    "table",
    { class: "data kv" },
    h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Value"))),
    h(
      "tbody",
      {},
      ...keys.map((k) => h("tr", {}, h("td", { class: "key" }, k), h("td", { class: "value" }, formatValue(flat[k])))),
    ),
  );
}

export const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

/** An image linked to its full size; a fetch that fails (server gone, file too large) says so. */
function thumbnail(url: string, path: string): HTMLElement {
  const img = h("img", { src: url, alt: path, loading: "lazy" }) as HTMLImageElement;
  const link = h("a", { href: url, target: "_blank", attrs: { rel: "noopener" } }, img);
  img.addEventListener("error", () => {
    link.replaceWith(h("div", { class: "thumb-missing muted" }, "not available: its server is unreachable and the hub has no copy"));
  });
  return link;
}

/** The files left out of the run's manifest, with why (a warning; names are for people only). */
export function skippedFiles(d: RunDetail): HTMLElement | null {
  const s = d.skipped_files;
  if (!s || s.total === 0) return null;
  const more = s.total - s.listed.length;
  return h(
    "details",
    { class: "warning-text" },
    h("summary", {}, `${formatNumber(s.total)} file${s.total === 1 ? "" : "s"} left out (cannot be synced)`),
    h(
      "ul",
      { class: "small" },
      ...s.listed.map((e) => h("li", {}, `${e.name}: ${e.reason}`)),
      more > 0 ? h("li", {}, `… and ${formatNumber(more)} more`) : null,
    ),
  );
}

/** What a media file name says of its image: the key of `media/<epoch_ms>_<hex>_<key>.<ext>`
 * (the SDK's naming), else the file name without its folder. */
export function imageLabel(path: string): string {
  const name = path.split("/").pop() ?? path;
  const m = /^\d+_[0-9a-f]+_(.+)\.[A-Za-z]+$/.exec(name);
  return m ? m[1]! : name;
}

/** The thumbnails of a run's images, each linked to its full size, labelled by key. */
export function imageGrid(images: readonly RunFile[]): HTMLElement {
  return h(
    "div",
    { class: "thumbs" },
    ...images.map((f) =>
      h(
        "figure",
        { class: "thumb" },
        // The hub fetches a file from its server the first time it is asked for (lazy bytes).
        thumbnail(f.url, f.path),
        h("figcaption", { class: "small" }, imageLabel(f.path)),
      ),
    ),
  );
}
