/**
 * The typed client of the hub's HTTP API (docs/api.md). Every state-changing request carries
 * the per-process token that the server put into index.html's `runicorn-token` meta tag.
 */

// The shapes the API answers with are generated from the Rust types (web/src/typescript.rs);
// after changing one there, run `scripts/gen-ts.sh` and commit generated/api.ts.
export * from "./generated/api";
import type {
  Columns,
  CompareAnswer,
  Fleet,
  LiveLogEvent,
  LiveMetricsEvent,
  LogPage,
  MediaAnswer,
  SystemAnswer,
  MetricsAnswer,
  PathsAnswer,
  RemotesAnswer,
  Run,
  RunDetail,
  RunCandidate,
  RunFilesPage,
  RunsPage,
} from "./generated/api";

/** A series of `/api/compare`, where `run` is always set. */
export type CompareSeries = CompareAnswer["series"][number];

/** A failed request: the API's error code and message (and, for an ambiguous run reference,
 * the runs it may mean), or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly candidates: RunCandidate[] = [],
    /** For a malformed filter (`code` `bad_filter`): where in the expression, in characters. */
    readonly position: number | null = null,
    readonly length: number | null = null,
    /** For a refused bundle (`code` `bad_bundle`): the bundle member to blame, when one is. */
    readonly member: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** `/api/runs/{ref}`: a key, a run id or `REMOTE/RUN_ID`, as one path segment. */
export function runUrl(ref: number | string, rest = ""): string {
  return `/api/runs/${encodeURIComponent(String(ref))}${rest}`;
}

type Query = Record<string, string | number | boolean | null | undefined>;

/** `path?query` leaving out empty values. */
export function apiUrl(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === null || v === undefined || v === "" || v === false) continue;
    q.set(k, v === true ? "1" : String(v));
  }
  const qs = q.toString().replace(/%2C/g, ",");
  return qs ? `${path}?${qs}` : path;
}

/** The per-process token from index.html (empty when served by the dev server). */
export function token(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="runicorn-token"]');
  return meta?.content ?? "";
}

/** The `ApiError` of a failed answer whose body (JSON, or null) is `data`. */
function errorOf(res: Response, data: unknown): ApiError {
  type Where = { position?: unknown; length?: unknown };
  const body = data as ({ error?: { code?: string; message?: string; member?: unknown } & Where; candidates?: RunCandidate[] } & Where) | null;
  const err = body?.error;
  // `position`/`length` of a bad filter: in the error object, or beside it.
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  return new ApiError(
    res.status,
    err?.code ?? "http",
    err?.message ?? `${res.status} ${res.statusText}`,
    Array.isArray(body?.candidates) ? body.candidates : [],
    num(err?.position) ?? num(body?.position),
    num(err?.length) ?? num(body?.length),
    typeof err?.member === "string" ? err.member : null,
  );
}

async function request<T>(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") headers["X-Runicorn-Token"] = token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "same-origin",
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network", "Could not reach the hub. Is `runicorn-hub` still running?");
  }
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw errorOf(res, data);
  return data as T;
}

export interface RunsQuery {
  remote?: string;
  path?: string;
  status?: string;
  tag?: string;
  q?: string;
  view?: "active" | "trash" | "all";
  sort?: string;
  order?: "asc" | "desc";
  limit?: number;
  offset?: number;
}

export const api = {
  runs: (q: RunsQuery, signal?: AbortSignal) => request<RunsPage>("GET", apiUrl("/api/runs", { ...q }), undefined, signal),
  /** A run's detail by any run reference (its `key` names it from then on). */
  run: (ref: number | string, signal?: AbortSignal) => request<RunDetail>("GET", runUrl(ref), undefined, signal),
  patchRun: (key: number, body: { alias?: string | null; tags?: string[]; notes?: string | null }) =>
    request<Run>("PATCH", runUrl(key), body),
  trashRun: (key: number) => request<Run>("DELETE", runUrl(key)),
  restoreRun: (key: number) => request<Run>("POST", runUrl(key, "/restore")),
  /** Deletes a run in the recycle bin for good (409 when it is not in the recycle bin). */
  purgeRun: (key: number) => request<unknown>("POST", runUrl(key, "/purge")),
  /** Deletes every run in the recycle bin for good. */
  emptyRecycleBin: () => request<{ purged: number }>("POST", "/api/recycle-bin/empty"),
  metrics: (
    key: number,
    q: {
      keys?: string;
      key_offset?: number;
      key_limit?: number;
      x?: "step" | "time";
      points?: number;
      from?: number;
      to?: number;
      raw?: boolean;
    },
    signal?: AbortSignal,
  ) => request<MetricsAnswer>("GET", apiUrl(runUrl(key, "/metrics"), q), undefined, signal),
  logs: (key: number, q: { offset?: number; limit?: number }, signal?: AbortSignal) =>
    request<LogPage>("GET", apiUrl(runUrl(key, "/logs"), q), undefined, signal),
  /** A page of a run's files, by path (`prefix` is a plain string prefix of the path). */
  files: (key: number, q: { prefix?: string; limit?: number; offset?: number }, signal?: AbortSignal) =>
    request<RunFilesPage>("GET", apiUrl(runUrl(key, "/files"), q), undefined, signal),
  paths: (q: { remote?: string; view?: string; status?: string; q?: string }, signal?: AbortSignal) =>
    request<PathsAnswer>("GET", apiUrl("/api/paths", q), undefined, signal),
  /** The keys across runs; `metrics` (metric names) where the hub gives them. */
  columns: (signal?: AbortSignal) => request<Columns & { metrics?: string[] }>("GET", "/api/columns", undefined, signal),
  remotes: (signal?: AbortSignal) => request<RemotesAnswer>("GET", "/api/remotes", undefined, signal),
  /** Every remote's host, its GPUs and the runs holding them (`GET /api/fleet`). */
  fleet: (signal?: AbortSignal) => request<Fleet>("GET", "/api/fleet", undefined, signal),
  /** A run's images by key, with step and caption (`GET /api/runs/{run}/media`). */
  media: (key: number, signal?: AbortSignal) => request<MediaAnswer>("GET", runUrl(key, "/media"), undefined, signal),
  /** A run's system telemetry by key (`GET /api/runs/{run}/system`). */
  system: (key: number, signal?: AbortSignal) => request<SystemAnswer>("GET", runUrl(key, "/system"), undefined, signal),
  compare: (
    q: { runs: string; keys?: string; x?: "step" | "time"; points?: number; from?: number; to?: number; raw?: boolean },
    signal?: AbortSignal,
  ) => request<CompareAnswer>("GET", apiUrl("/api/compare", q), undefined, signal),
};

/** Live updates of one run (`/api/runs/{run}/live`). */
export interface LiveHandlers {
  metrics?: (data: LiveMetricsEvent) => void;
  log?: (data: LiveLogEvent) => void;
  run?: (run: Run) => void;
}

function parseEvent<T>(ev: MessageEvent): T | null {
  try {
    return JSON.parse(ev.data as string) as T;
  } catch {
    return null;
  }
}

/** Opens the live stream of a run; returns a function that closes it. */
export function openLive(
  key: number,
  q: { after_step?: number | null; log_offset?: number | null },
  handlers: LiveHandlers,
): () => void {
  const es = new EventSource(apiUrl(runUrl(key, "/live"), q));
  if (handlers.metrics) {
    const h = handlers.metrics;
    es.addEventListener("metrics", (ev) => {
      const d = parseEvent<Parameters<typeof h>[0]>(ev as MessageEvent);
      if (d) h(d);
    });
  }
  if (handlers.log) {
    const h = handlers.log;
    es.addEventListener("log", (ev) => {
      const d = parseEvent<Parameters<typeof h>[0]>(ev as MessageEvent);
      if (d) h(d);
    });
  }
  if (handlers.run) {
    const h = handlers.run;
    es.addEventListener("run", (ev) => {
      const d = parseEvent<Run>(ev as MessageEvent);
      if (d) h(d);
    });
  }
  return () => es.close();
}

/** The store-changed stream (`/api/events`): `onChanged` runs at most once a second. */
export function openChanges(
  onChanged: () => void,
  onState?: (connected: boolean) => void,
  onAlerts?: (event: import("./generated/api").AlertsEvent) => void,
): () => void {
  const es = new EventSource("/api/events");
  es.addEventListener("changed", () => onChanged());
  if (onAlerts) {
    es.addEventListener("alerts", (e) => {
      try {
        onAlerts(JSON.parse((e as MessageEvent<string>).data) as import("./generated/api").AlertsEvent);
      } catch {
        // A malformed event is skipped; the next one carries the count again.
      }
    });
  }
  if (onState) {
    es.onopen = () => onState(true);
    es.onerror = () => onState(false);
  }
  return () => es.close();
}

/** Alerts agents raised about runs (docs/api.md, "Alerts"). */
export const alertsApi = {
  /** The unacknowledged alerts (`all`: every one), optionally of one run. */
  list: (q: { all?: boolean; run?: number | string } = {}, signal?: AbortSignal) =>
    request<import("./generated/api").Alerts>("GET", apiUrl("/api/alerts", { all: q.all, run: q.run }), undefined, signal),
  ack: (id: number) => request<import("./generated/api").Acked>("POST", `/api/alerts/${encodeURIComponent(String(id))}/ack`),
  ackAll: () => request<import("./generated/api").Acked>("POST", "/api/alerts/ack-all"),
};

/** `/api/remotes/{name}…`. */
function remoteUrl(name: string, rest = ""): string {
  return `/api/remotes/${encodeURIComponent(name)}${rest}`;
}

/** Managing remotes (docs/api.md, "Remotes"): each answers with the remote as listed now. */
export const remotesApi = {
  pause: (name: string) => request<import("./generated/api").Remote>("POST", remoteUrl(name, "/pause")),
  resume: (name: string) => request<import("./generated/api").Remote>("POST", remoteUrl(name, "/resume")),
  /** "Sync now", or "retry now" for a remote whose connection is lost. */
  syncNow: (name: string) => request<import("./generated/api").Remote>("POST", remoteUrl(name, "/sync")),
  rename: (name: string, to: string) =>
    request<import("./generated/api").Remote>("POST", remoteUrl(name, "/rename"), { name: to }),
  /** Removes a remote; its runs stay unless `forgetRuns`. */
  remove: (name: string, forgetRuns: boolean) =>
    request<import("./generated/api").RemoteRemoved>("DELETE", remoteUrl(name, forgetRuns ? "?forget_runs=true" : "")),
};

/** Artifacts and lineage (docs/api.md, "Artifacts"). */
export const artifactsApi = {
  list: (q: { type?: string; remote?: string; removed?: boolean } = {}, signal?: AbortSignal) =>
    request<import("./generated/api").ArtifactsAnswer>("GET", apiUrl("/api/artifacts", q), undefined, signal),
  /** One artifact with each version's files. */
  detail: (remote: string, type: string, name: string, signal?: AbortSignal) =>
    request<import("./generated/api").ArtifactDetail>("GET", artifactUrl(remote, type, name), undefined, signal),
  /** What a run produced and used, and its upstream assets. */
  ofRun: (run: number | string, signal?: AbortSignal) =>
    request<import("./generated/api").RunArtifactsAnswer>("GET", runUrl(run, "/artifacts"), undefined, signal),
  /** The lineage graph around a run, or around a version (`artifact` is `REMOTE/TYPE/NAME`). */
  lineage: (q: { run?: number | string; artifact?: string; version?: number; depth?: number }, signal?: AbortSignal) =>
    request<import("./generated/api").Lineage>("GET", apiUrl("/api/lineage", q), undefined, signal),
};

/** `/api/artifacts/{remote}/{type}/{name}`, each part one path segment. */
export function artifactUrl(remote: string, type: string, name: string, rest = ""): string {
  return `/api/artifacts/${[remote, type, name].map(encodeURIComponent).join("/")}${rest}`;
}

/** Where a version's file downloads (`GET /api/artifacts/{remote}/{type}/{name}/v{N}/files/{path}`). */
export function artifactFileUrl(remote: string, type: string, name: string, version: number, path: string): string {
  return artifactUrl(remote, type, name, `/v${version}/files/${path.split("/").map(encodeURIComponent).join("/")}`);
}

/** The network failure every request reports the same way. */
const unreachable = () => new ApiError(0, "network", "Could not reach the hub. Is `runicorn-hub` still running?");

/** Offline bundles (docs/api.md, "Bundles"). */
export const bundlesApi = {
  /**
   * Writes a bundle of the runs (`POST /api/bundles/exports`); the answer names where it
   * downloads once (`GET /api/bundles/exports/{id}`), which the browser saves straight to disk.
   */
  async exportRuns(
    runs: (number | string)[],
    options: { metadataOnly?: boolean; withArtifacts?: boolean } = {},
  ): Promise<import("./generated/api").ExportReady & { url: string }> {
    const ready = await request<import("./generated/api").ExportReady>("POST", "/api/bundles/exports", {
      runs,
      metadata_only: options.metadataOnly ?? false,
      with_artifacts: options.withArtifacts ?? false,
    });
    return { ...ready, url: `/api/bundles/exports/${encodeURIComponent(ready.id)}` };
  },

  /** Uploads a bundle file (`POST /api/bundles/uploads`), reporting bytes sent. */
  upload(file: File, onProgress?: (sent: number, total: number) => void): Promise<import("./generated/api").BundleUpload> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", apiUrl("/api/bundles/uploads", { name: file.name }));
      xhr.setRequestHeader("X-Runicorn-Token", token());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      if (onProgress) xhr.upload.onprogress = (ev) => onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size);
      xhr.onerror = () => reject(unreachable());
      xhr.onload = () => {
        let data: unknown = null;
        try {
          data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          data = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data as import("./generated/api").BundleUpload);
        else reject(errorOf({ status: xhr.status, statusText: xhr.statusText } as Response, data));
      };
      xhr.send(file);
    });
  },

  /** What importing an upload would do (`dryRun`), or the import itself. */
  importUpload: (id: string, dryRun: boolean, asRemote: string | null) =>
    request<import("./generated/api").ImportReport>("POST", `/api/bundles/uploads/${encodeURIComponent(id)}/import`, {
      dry_run: dryRun,
      as_remote: asRemote,
    }),
};
