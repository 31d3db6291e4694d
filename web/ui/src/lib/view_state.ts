/**
 * Views that stick: the settings of a page (filter, sort, columns, grouping, chart settings)
 * kept in the URL's hash parameters, so a copied URL reproduces the view, and remembered per
 * browser (localStorage), so opening the page with no view in its URL brings the last one back.
 *
 * The rule, for every page that uses it: when the URL names any of the page's view parameters,
 * the URL is the view (absent parameters are the defaults), except the display settings named
 * `sticky` (e.g. the chosen columns), which fall back to the remembered ones when the URL leaves
 * them out; when the URL names none, the remembered view is used. Each change is both written to
 * the URL (without a history entry) and remembered.
 */
import { store } from "./dom";

/** A view: parameter name → value (absent or empty = the default). */
export type ViewParams = Record<string, string>;

const PREFIX = "runicorn.view.";

/** The remembered view of `page` (only string values; anything unreadable is dropped). */
export function rememberedView(page: string): ViewParams {
  try {
    const v = JSON.parse(store.get(PREFIX + page) ?? "{}") as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) return {};
    const out: ViewParams = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === "string" && x !== "") out[k] = x;
    return out;
  } catch {
    return {};
  }
}

/** Remembers `view` as the last view of `page` (empty values left out). */
export function rememberView(page: string, view: ViewParams): void {
  const out: ViewParams = {};
  for (const [k, v] of Object.entries(view)) if (v !== "") out[k] = v;
  store.set(PREFIX + page, JSON.stringify(out));
}

/**
 * The view to open `page` with: from `params` (the URL) when it names any of `keys`, else the
 * remembered one; `sticky` keys missing from the URL come from the remembered view either way.
 */
export function resolveView(page: string, params: URLSearchParams, keys: readonly string[], sticky: readonly string[] = []): ViewParams {
  const saved = rememberedView(page);
  const fromUrl = keys.some((k) => (params.get(k) ?? "") !== "");
  const out: ViewParams = {};
  for (const k of keys) {
    const v = fromUrl ? (params.get(k) ?? "") : (saved[k] ?? "");
    if (v !== "") out[k] = v;
    else if (sticky.includes(k) && saved[k]) out[k] = saved[k];
  }
  return out;
}

/** A list parameter (`cols=summary.acc,config.lr`) split into its items, each once, in order. */
export function splitList(text: string | undefined | null): string[] {
  const out: string[] = [];
  for (const part of (text ?? "").split(",")) {
    const t = part.trim();
    if (t && !out.includes(t)) out.push(t);
  }
  return out;
}

/** The inverse of `splitList`. */
export function joinList(items: readonly string[]): string {
  return items.join(",");
}
