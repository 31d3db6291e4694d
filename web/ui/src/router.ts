/**
 * Hash routing and the state kept in the URL: `#/runs?q=…`, `#/run/42?tab=logs`,
 * `#/compare?runs=1,2`, `#/remotes`, `#/fleet`, `#/trash`, `#/alerts`. A run is named by a run reference, as the API
 * takes it: its key (`#/run/42`), its run id (`#/run/20261202_150537_a4f9e9`) or its remote and
 * run id (`#/run/gpu1/20261202_150537_a4f9e9`, or the same as one segment, `gpu1%2F…`). Parsing and building are pure so they can be
 * unit-tested; `onRouteChange` wires them to the window.
 */

export type Route =
  | { page: "runs"; params: URLSearchParams }
  | { page: "trash"; params: URLSearchParams }
  | { page: "run"; ref: string; params: URLSearchParams }
  | { page: "compare"; runs: string[]; params: URLSearchParams }
  | { page: "remotes"; params: URLSearchParams }
  | { page: "fleet"; params: URLSearchParams }
  | { page: "artifacts"; params: URLSearchParams }
  | { page: "lineage"; params: URLSearchParams }
  | { page: "alerts"; params: URLSearchParams }
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

/** True for text the API may take as a run reference (the server has the last word). */
function usableRef(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return text.length > 0 && !/[\u0000-\u001f\u007f]/.test(text) && !text.startsWith("/") && !text.endsWith("/");
}

/** Parses a comma-separated list of run references, keeping each once, in order. */
export function parseRefs(text: string | null): string[] {
  if (!text) return [];
  const out: string[] = [];
  for (const part of text.split(",")) {
    const t = part.trim();
    if (usableRef(t) && !out.includes(t)) out.push(t);
  }
  return out;
}

/** The run reference of `#/run/…`: one segment (a key, a run id, or `REMOTE/RUN_ID` encoded as
 * one) or two (`REMOTE` and `RUN_ID`). */
function runRef(segments: string[]): string | null {
  if (segments.length === 1) return usableRef(segments[0]!) ? segments[0]! : null;
  if (segments.length === 2 && segments.every((s) => !s.includes("/") && usableRef(s))) return segments.join("/");
  return null;
}

/** The route a location hash names. An empty hash is the runs table. */
export function parseRoute(hash: string): Route {
  const { segments, params } = splitHash(hash);
  const [first, second] = segments;
  if (first === undefined || first === "runs") return { page: "runs", params };
  if (first === "trash") return { page: "trash", params };
  if (first === "remotes") return { page: "remotes", params };
  if (first === "fleet") return { page: "fleet", params };
  if (first === "artifacts") return { page: "artifacts", params };
  if (first === "lineage") return { page: "lineage", params };
  if (first === "alerts") return { page: "alerts", params };
  if (first === "compare") return { page: "compare", runs: parseRefs(params.get("runs")), params };
  if (first === "run" && second !== undefined) {
    const ref = runRef(segments.slice(1));
    if (ref !== null) return { page: "run", ref, params };
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

/** The compare page for these runs (keys or other run references). */
export function compareHash(refs: readonly (number | string)[]): string {
  return buildHash("compare", { runs: refs.join(",") });
}

/** The detail page of one run (a key or another run reference), optionally on a tab.
 * `REMOTE/RUN_ID` becomes two segments. */
export function runHash(ref: number | string, tab?: string): string {
  const path = String(ref).split("/").map(encodeURIComponent).join("/");
  return buildHash(`run/${path}`, { tab: tab && tab !== "charts" ? tab : undefined });
}

/** The Artifacts page, optionally on one artifact (`REMOTE/TYPE/NAME`) and version. */
export function artifactsHash(
  q: { type?: string; remote?: string; artifactType?: string; name?: string; version?: number; removed?: boolean } = {},
): string {
  const artifact = q.remote !== undefined && q.artifactType !== undefined && q.name !== undefined ? `${q.remote}/${q.artifactType}/${q.name}` : undefined;
  return buildHash("artifacts", { type: q.type, removed: q.removed, artifact, version: q.version });
}

/** The lineage graph page around a run, or around a version (`artifact` is `REMOTE/TYPE/NAME`). */
export function lineageHash(q: { run?: number | string; artifact?: string; version?: number }): string {
  return buildHash("lineage", { run: q.run, artifact: q.artifact, version: q.version });
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
