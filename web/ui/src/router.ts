/**
 * Hash routing and the state kept in the URL: `#/runs?q=…`, `#/run/42?tab=logs`,
 * `#/compare?runs=1,2`, `#/remotes`, `#/trash`. Parsing and building are pure so they can be
 * unit-tested; `onRouteChange` wires them to the window.
 */

export type Route =
  | { page: "runs"; params: URLSearchParams }
  | { page: "trash"; params: URLSearchParams }
  | { page: "run"; id: number; params: URLSearchParams }
  | { page: "compare"; runs: number[]; params: URLSearchParams }
  | { page: "remotes"; params: URLSearchParams }
  | { page: "not_found"; path: string; params: URLSearchParams };

/** Splits `#/a/b?x=1` into its path segments and query. */
export function splitHash(hash: string): { segments: string[]; params: URLSearchParams } {
  const h = hash.replace(/^#/, "");
  const q = h.indexOf("?");
  const path = q >= 0 ? h.slice(0, q) : h;
  const params = new URLSearchParams(q >= 0 ? h.slice(q + 1) : "");
  const segments = path.split("/").filter((s) => s.length > 0).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  return { segments, params };
}

/** Parses a comma-separated id list, keeping positive integers once each, in order. */
export function parseIds(text: string | null): number[] {
  if (!text) return [];
  const seen = new Set<number>();
  const out: number[] = [];
  for (const part of text.split(",")) {
    const t = part.trim();
    if (!/^\d+$/.test(t)) continue;
    const n = Number(t);
    if (n > 0 && Number.isSafeInteger(n) && !seen.has(n)) {
      seen.add(n);
      out.push(n);
    }
  }
  return out;
}

/** The route a location hash names. An empty hash is the runs table. */
export function parseRoute(hash: string): Route {
  const { segments, params } = splitHash(hash);
  const [first, second] = segments;
  if (first === undefined || first === "runs") return { page: "runs", params };
  if (first === "trash") return { page: "trash", params };
  if (first === "remotes") return { page: "remotes", params };
  if (first === "compare") return { page: "compare", runs: parseIds(params.get("runs")), params };
  if (first === "run" && second !== undefined && /^\d+$/.test(second)) {
    return { page: "run", id: Number(second), params };
  }
  return { page: "not_found", path: segments.join("/"), params };
}

/** Builds `#/path?query`, leaving out empty, null and undefined values. */
export function buildHash(
  path: string,
  params: Record<string, string | number | boolean | null | undefined> = {},
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "" || v === false) continue;
    q.set(k, v === true ? "1" : String(v));
  }
  const qs = q.toString().replace(/%2C/g, ",");
  return `#/${path}${qs ? `?${qs}` : ""}`;
}

/** The compare page for these runs. */
export function compareHash(ids: readonly number[]): string {
  return buildHash("compare", { runs: ids.join(",") });
}

/** The detail page of one run, optionally on a tab. */
export function runHash(id: number, tab?: string): string {
  return buildHash(`run/${id}`, { tab: tab && tab !== "charts" ? tab : undefined });
}

/** The same params with some keys changed (null removes a key). */
export function withParams(
  params: URLSearchParams,
  changes: Record<string, string | number | null | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  params.forEach((v, k) => (out[k] = v));
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") delete out[k];
    else out[k] = String(v);
  }
  return out;
}

/** Calls `handler` with the current route now and on every hash change. */
export function onRouteChange(handler: (route: Route) => void): void {
  const fire = () => handler(parseRoute(window.location.hash));
  window.addEventListener("hashchange", fire);
  fire();
}

/** Changes the hash without adding a history entry or re-routing when `quiet`. */
export function replaceHash(hash: string): void {
  if (window.location.hash === hash) return;
  history.replaceState(null, "", hash);
}
