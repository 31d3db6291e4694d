/**
 * The typed client of the hub's HTTP API (docs/api.md). Every state-changing request carries
 * the per-process token that the server put into index.html's `runicorn-token` meta tag.
 */

export type Status = "running" | "finished" | "failed" | "crashed" | "interrupted" | "unknown";

export interface Run {
  key: number;
  run_id: string;
  remote: string | null;
  host: string | null;
  dir: string | null;
  path: string | null;
  alias: string | null;
  tags: string[];
  notes: string | null;
  status: Status;
  reason: string | null;
  created_at: number | null;
  ended_at: number | null;
  last_step: number | null;
  points: number | null;
  keys: string[];
  summary: Record<string, unknown> | null;
  config: Record<string, unknown> | null;
  log_bytes: number | null;
  deleted: boolean;
  removed: boolean;
  trashed_at: number | null;
}

export interface MetricInfo {
  name: string;
  points: number;
  first_step: number | null;
  last_step: number | null;
}

export interface RunFile {
  path: string;
  size: number;
  mtime: number | null;
  cached: boolean;
  url: string;
}

export interface RunDetail extends Run {
  meta: Record<string, unknown> | null;
  status_record: Record<string, unknown> | null;
  environment: Record<string, unknown> | null;
  metrics: MetricInfo[];
  files: RunFile[];
  corrupt_lines: number;
  remote_alias: string | null;
  remote_tags: string[];
  /** Files left out of `files` (their names cannot be sent or stored), the first with reasons. */
  skipped_files: { total: number; listed: { name: string; reason: string }[] };
}

export interface RunsPage {
  runs: Run[];
  total: number;
}

export interface Series {
  key: string;
  total: number;
  downsampled: boolean;
  steps: number[];
  times: (number | null)[];
  values: (number | null)[];
}

export interface MetricsAnswer {
  run: number;
  x: "step" | "time";
  /** How many metric keys the run has. */
  key_count: number;
  /** The `key_offset` of the next page of keys, or null after the last page. */
  next_key_offset: number | null;
  series: Series[];
}

export interface LogPage {
  start: number;
  offset: number;
  next: number;
  end: number;
  text: string;
  eof: boolean;
}

export interface PathNode {
  name: string;
  path: string;
  count: number;
  children: PathNode[];
}

export interface PathsAnswer {
  total: number;
  tree: PathNode;
}

export interface Columns {
  summary: string[];
  config: string[];
}

export interface Remote {
  name: string;
  address: string | null;
  connected: boolean;
  last_sync_at: number | null;
  lag_seconds: number | null;
  last_error: string | null;
  agent_host: string | null;
  agent_root: string | null;
  runs: number;
  points: number;
  /** Set when the sync left items out (the rest is stored): a warning, not an error. */
  warning: string | null;
  skipped_items: number;
  skipped_files: number;
  /** The first skipped items, with reasons (names are for people, never paths). */
  skipped: { kind: string; name: string; reason: string; by_hub: boolean; at: number }[];
}

export interface CompareSeries extends Series {
  run: number;
}

export interface ConfigDiffRow {
  key: string;
  values: unknown[];
  differs: boolean;
}

export interface CompareAnswer {
  runs: Run[];
  keys: string[];
  series: CompareSeries[];
  config_diff: ConfigDiffRow[];
}

/** One run an ambiguous run reference may mean (a `409` lists them). */
export interface RunCandidate {
  key: number;
  remote: string;
  run_id: string;
}

/** A failed request: the API's error code and message (and, for an ambiguous run reference,
 * the runs it may mean), or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly candidates: RunCandidate[] = [],
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
  if (!res.ok) {
    const body = data as { error?: { code?: string; message?: string }; candidates?: RunCandidate[] } | null;
    const err = body?.error;
    throw new ApiError(
      res.status,
      err?.code ?? "http",
      err?.message ?? `${res.status} ${res.statusText}`,
      Array.isArray(body?.candidates) ? body.candidates : [],
    );
  }
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
  paths: (q: { remote?: string; view?: string; status?: string; q?: string }, signal?: AbortSignal) =>
    request<PathsAnswer>("GET", apiUrl("/api/paths", q), undefined, signal),
  columns: (signal?: AbortSignal) => request<Columns>("GET", "/api/columns", undefined, signal),
  remotes: (signal?: AbortSignal) => request<{ remotes: Remote[] }>("GET", "/api/remotes", undefined, signal),
  compare: (
    q: { runs: string; keys?: string; x?: "step" | "time"; points?: number; from?: number; to?: number; raw?: boolean },
    signal?: AbortSignal,
  ) => request<CompareAnswer>("GET", apiUrl("/api/compare", q), undefined, signal),
};

/** Live updates of one run (`/api/runs/{run}/live`). */
export interface LiveHandlers {
  metrics?: (data: { series: { key: string; steps: number[]; times: (number | null)[]; values: (number | null)[] }[] }) => void;
  log?: (data: { offset: number; next: number; text: string }) => void;
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
export function openChanges(onChanged: () => void, onState?: (connected: boolean) => void): () => void {
  const es = new EventSource("/api/events");
  es.addEventListener("changed", () => onChanged());
  if (onState) {
    es.onopen = () => onState(true);
    es.onerror = () => onState(false);
  }
  return () => es.close();
}
