/**
 * The compare page's view settings (grouping, band kind, parallel-coordinates axes, smoothing):
 * read from the page's URL parameters, else from what this browser last used, and written back
 * to both, so a copied URL reproduces the view. Also the rule that says whether a metric is
 * better low or high.
 */
import { store } from "./dom";

export type BandKind = "minmax" | "std";

export interface CompareView {
  /** "" (no grouping), "path", or a flattened config key as `config.<key>`. */
  group: string;
  band: BandKind;
  /** Parallel-coordinates axes: `config.<key>` or `metric.<key>` (its last value); null: defaults. */
  axes: string[] | null;
  /** EMA smoothing, or null for the charts' shared setting. */
  smoothing: number | null;
}

const KEY = "runicorn.compare";
const PARAMS = ["group", "band", "axes", "smooth"] as const;

function parse(get: (k: string) => string | null | undefined): CompareView {
  const band = get("band");
  const axes = get("axes");
  const smooth = get("smooth");
  const s = smooth === null || smooth === undefined || smooth === "" ? NaN : Number(smooth);
  return {
    group: get("group") ?? "",
    band: band === "std" ? "std" : "minmax",
    axes: axes ? axes.split(",").filter((a) => a.length > 0) : null,
    smoothing: Number.isFinite(s) && s >= 0 && s <= 0.99 ? s : null,
  };
}

/** The view of the URL when it names any setting, else the one remembered in this browser. */
export function loadCompareView(params: URLSearchParams): CompareView {
  if (PARAMS.some((p) => params.has(p))) return parse((k) => params.get(k));
  try {
    const saved = JSON.parse(store.get(KEY) ?? "{}") as Record<string, unknown>;
    return parse((k) => (typeof saved[k] === "string" ? (saved[k] as string) : typeof saved[k] === "number" ? String(saved[k]) : null));
  } catch {
    return parse(() => null);
  }
}

/** The URL parameters of a view (empty values left out by the hash builder). */
export function viewParams(v: CompareView): Record<string, string> {
  return {
    group: v.group,
    band: v.band === "std" ? "std" : "",
    axes: v.axes ? v.axes.join(",") : "",
    smooth: v.smoothing === null ? "" : String(v.smoothing),
  };
}

/** Remembers the view in this browser. */
export function saveCompareView(v: CompareView): void {
  store.set(KEY, JSON.stringify(viewParams(v)));
}

const LOWER_IS_BETTER = /loss|err|error|mse|mae|rmse|nll|perplexity|ppl|wer|cer|cost|regret|latency|time|distance/i;

/** Whether a smaller value of metric `key` is better: keys naming a loss, error, … are. */
export function lowerIsBetter(key: string): boolean {
  return LOWER_IS_BETTER.test(key);
}

/** The rule of {@link lowerIsBetter}, for the page to show. */
export const BEST_RULE =
  "Best per metric in bold: lowest (↓) for keys naming loss, error, mse, mae, rmse, nll, perplexity, wer, cer, cost, regret, latency, time or distance; highest (↑) otherwise.";
