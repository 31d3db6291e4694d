// GENERATED FILE, do not edit. Written by `scripts/gen-ts.sh` from the Rust types the
// dashboard's API sends (web/src/dto.rs, web/src/routes/*.rs, the store's skipped items)
// and protocol's `RunStatus::ALL`; see web/src/typescript.rs. Change the Rust types, run
// the command and commit this file: `cargo test -p runicorn-web` fails while it is stale.

/** A run's status: the vocabulary of `RunStatus` (protocol/src/run_format/records.rs). */
export type RunStatus = "running" | "stalled" | "finished" | "failed" | "interrupted" | "killed" | "crashed" | "unreadable" | "unknown";

/** Every status, in the order of `RunStatus::ALL` (docs/run-format.md). */
export const RUN_STATUSES: readonly RunStatus[] = ["running", "stalled", "finished", "failed", "interrupted", "killed", "crashed", "unreadable", "unknown"];

/**
 * A remote's state as the API writes it (`RemoteState` in docs/api.md): `live` (followed,
 * connected), `offline` (followed, connection lost: retrying), `paused`, `not_followed` (no hub
 * process follows it), `imported` (known only from imported bundles: nothing to follow) or
 * `removed` (removed by the user; its runs kept).
 */
export type RemoteState = "live" | "offline" | "paused" | "not_followed" | "imported" | "removed";

/**
 * A run as listed (`Run` in docs/api.md).
 */
export type Run = {
  /**
   * The hub's key of the run (what `/api/runs/{run}` takes, beside the other references).
   */
  key: number,
  run_id: string,
  remote: string,
  host: string | null,
  dir: string,
  path: string,
  alias: string | null,
  tags: Array<string>,
  notes: string | null,
  status: RunStatus,
  reason: string | null,
  created_at: number | null,
  ended_at: number | null,
  last_step: number | null,
  points: number,
  /**
   * The first [`runicorn_store::ROW_KEYS`] metric keys by name.
   */
  keys: Array<string>,
  /**
   * How many metric keys the run has.
   */
  key_count: number,
  summary: unknown,
  config: unknown,
  log_bytes: number,
  deleted: boolean,
  removed: boolean,
  trashed_at: number | null,
  /**
   * Whether the hub follows the run's remote right now (see `remote_heard_at`).
   */
  remote_state: RemoteState,
  /**
   * The last time the hub heard from the run's remote (Unix seconds).
   */
  remote_heard_at: number | null,
  /**
   * The last heartbeat the run's `status.json` recorded: when a run that ended without an
   * `ended_at` (crashed, killed) was last alive, so it has a duration too.
   */
  heartbeat_at: number | null,
};

/**
 * `{"runs": [...], "total": N}`.
 */
export type RunsPage = {
  runs: Array<Run>,
  total: number,
};

/**
 * `GET /api/runs/{run}`: the run and what only its page shows.
 */
export type RunDetail = {
  meta: unknown,
  status_record: unknown,
  environment: unknown,
  /**
   * The first [`crate::routes::runs::MAX_DETAIL_METRICS`] metric keys by name (all of them
   * are `key_count`; `/metrics` pages through them).
   */
  metrics: Array<MetricInfo>,
  files: Array<RunFile>,
  corrupt_lines: number,
  remote_alias: string | null,
  remote_tags: Array<string>,
  /**
   * Files left out of `files` (the agent could not name or read them, or the hub refused
   * them), with the first of them and why.
   */
  skipped_files: SkippedFiles,
  /**
   * The hub's key of the run (what `/api/runs/{run}` takes, beside the other references).
   */
  key: number,
  run_id: string,
  remote: string,
  host: string | null,
  dir: string,
  path: string,
  alias: string | null,
  tags: Array<string>,
  notes: string | null,
  status: RunStatus,
  reason: string | null,
  created_at: number | null,
  ended_at: number | null,
  last_step: number | null,
  points: number,
  /**
   * The first [`runicorn_store::ROW_KEYS`] metric keys by name.
   */
  keys: Array<string>,
  /**
   * How many metric keys the run has.
   */
  key_count: number,
  summary: unknown,
  config: unknown,
  log_bytes: number,
  deleted: boolean,
  removed: boolean,
  trashed_at: number | null,
  /**
   * Whether the hub follows the run's remote right now (see `remote_heard_at`).
   */
  remote_state: RemoteState,
  /**
   * The last time the hub heard from the run's remote (Unix seconds).
   */
  remote_heard_at: number | null,
  /**
   * The last heartbeat the run's `status.json` recorded: when a run that ended without an
   * `ended_at` (crashed, killed) was last alive, so it has a duration too.
   */
  heartbeat_at: number | null,
};

/**
 * One metric key of a run's detail.
 */
export type MetricInfo = {
  name: string,
  points: number,
  first_step: number,
  last_step: number,
};

/**
 * One file of a run's manifest.
 */
export type RunFile = {
  path: string,
  size: number,
  mtime: number,
  /**
   * As the agent reported it (lowercase hex); `null` when it gave none.
   */
  sha256: string | null,
  cached: boolean,
  url: string,
};

/**
 * One page of `GET /api/runs/{run}/files`.
 */
export type RunFilesPage = {
  /**
   * Sorted by path.
   */
  files: Array<RunFile>,
  /**
   * Files matching `prefix` in all (the page may hold fewer).
   */
  total: number,
};

/**
 * The files left out of one run's manifest (`runicorn_store::SkippedFiles`).
 */
export type SkippedFiles = {
  /**
   * How many (the list may be shorter).
   */
  total: number,
  /**
   * The first of them, with reasons.
   */
  listed: Array<SkippedEntry>,
};

/**
 * Something left out, and why (`runicorn_protocol::wire::SkippedEntry`). `name` is for people
 * only: a lossy, escaped rendering, never a path to act on.
 */
export type SkippedEntry = {
  name: string,
  reason: string,
};

export type MetricsAnswer = {
  run: number,
  x: "step" | "time",
  series: Array<Series>,
  /**
   * How many metric keys the run has.
   */
  key_count: number,
  /**
   * Without `keys`: the `key_offset` of the next page; `null` after the last.
   */
  next_key_offset: number | null,
};

/**
 * One series of `GET /api/runs/{run}/metrics` and `/api/compare` (`run`, the run's key, only in
 * the latter).
 */
export type Series = {
  run?: number,
  key: string,
  total: number,
  downsampled: boolean,
  steps: Array<number>,
  times: Array<number | null>,
  /**
   * Non-finite values are written as `null` by serde_json: a chart gap.
   */
  values: Array<number | null>,
};

/**
 * One page of a log.
 */
export type LogPage = {
  start: number,
  offset: number,
  next: number,
  end: number,
  text: string,
  eof: boolean,
};

export type LiveMetricsEvent = {
  series: Array<LivePoints>,
};

/**
 * New points of one key, as `event: metrics` sends them.
 */
export type LivePoints = {
  key: string,
  steps: Array<number>,
  times: Array<number | null>,
  /**
   * Non-finite values are `null`, as in [`SeriesDto`].
   */
  values: Array<number | null>,
};

export type LiveLogEvent = {
  offset: number,
  next: number,
  text: string,
};

export type ChangedEvent = {
  at: number,
};

export type PathsAnswer = {
  total: number,
  tree: PathNode,
};

/**
 * One node of the path tree.
 */
export type PathNode = {
  name: string,
  path: string,
  count: number,
  children: Array<PathNode>,
};

export type Columns = {
  summary: Array<string>,
  config: Array<string>,
  /**
   * Metric keys (at most [`MAX_COLUMN_KEYS`], sorted).
   */
  metrics: Array<string>,
};

export type RemotesAnswer = {
  remotes: Array<Remote>,
};

/**
 * What `DELETE /api/remotes/{name}` answers.
 */
export type RemoteRemoved = {
  /**
   * The remote as listed now (`state: "removed"`); `null` once forgotten.
   */
  remote: Remote | null,
  /**
   * Its runs were deleted too.
   */
  forgotten: boolean,
};

/**
 * A remote as `GET /api/remotes` lists it; its transport settings are never included.
 */
export type Remote = {
  name: string,
  address: string,
  connected: boolean,
  last_sync_at: number | null,
  lag_seconds: number | null,
  last_error: string | null,
  agent_host: string | null,
  agent_root: string | null,
  runs: number,
  points: number,
  /**
   * Set when the sync left items out (a warning: the rest is stored).
   */
  warning: string | null,
  skipped_items: number,
  skipped_files: number,
  /**
   * The first skipped items, with reasons.
   */
  skipped: Array<SkippedItem>,
  state: RemoteState,
  /**
   * Removed by the user (its runs kept) since; `null`: not removed.
   */
  removed_at: number | null,
  paused: boolean,
  /**
   * The hub process following it (`ui pid 12 on laptop`); `null` when none does.
   */
  follower: string | null,
  /**
   * The last time the hub heard from it.
   */
  heard_at: number | null,
  /**
   * A "sync now" not yet picked up by its follower, asked at this time.
   */
  sync_requested_at: number | null,
};

/**
 * One thing a sync left out (`runicorn_store::SkippedItem`).
 */
export type SkippedItem = {
  /**
   * `run`, `points` or `log`.
   */
  kind: string,
  /**
   * What was left out, for people (not a path to act on).
   */
  name: string,
  reason: string,
  /**
   * True when the hub refused it; false when the agent left it out itself.
   */
  by_hub: boolean,
  /**
   * When it was first recorded (seconds since the epoch).
   */
  at: number,
};

/**
 * What a purge did.
 */
export type Purged = {
  /**
   * Runs deleted for good.
   */
  purged: number,
  /**
   * File contents removed from the hub's file cache (no other run named them).
   */
  cached_files_removed: number,
};

/**
 * One alert.
 */
export type Alert = {
  /**
   * The hub's number of the alert (`POST /api/alerts/{id}/ack`).
   */
  id: number,
  /**
   * The agent's id of the occurrence (`stalled@120`, `nonfinite:loss`, ...).
   */
  alert_id: string,
  /**
   * `stalled`, `crashed`, `failed`, `nonfinite` or `gpu_idle`.
   */
  kind: string,
  message: string,
  key: string | null,
  step: number | null,
  value: string | null,
  raised_at: number,
  received_at: number,
  acked_at: number | null,
  remote: string,
  host: string | null,
  /**
   * The run's key (`#/run/<key>`).
   */
  run: number,
  run_ref: string,
  run_id: string,
  path: string,
  alias: string | null,
};

/**
 * `GET /api/alerts`.
 */
export type Alerts = {
  alerts: Array<Alert>,
  /**
   * Alerts not acknowledged, in the whole store (the badge's count).
   */
  unacked: number,
};

/**
 * The `alerts` event of `/api/events`: sent when alerts arrived or were acknowledged.
 */
export type AlertsEvent = {
  /**
   * Alerts not acknowledged now.
   */
  unacked: number,
  /**
   * The alerts new since the stream's last `alerts` event (or since it opened), oldest first.
   */
  new: Array<Alert>,
};

/**
 * What acknowledging did.
 */
export type Acked = {
  /**
   * Alerts acknowledged by this request.
   */
  acked: number,
  /**
   * Alerts still not acknowledged.
   */
  unacked: number,
};

export type CompareAnswer = {
  runs: Array<Run>,
  keys: Array<string>,
  /**
   * Each series names its run.
   */
  series: Array<Series & { run: number }>,
  /**
   * Each series' statistics over all its points, whatever `from`/`to` asked.
   */
  stats: Array<SeriesStatsDto>,
  config_diff: Array<ConfigDiffRow>,
  /**
   * Flattened config keys across the runs (`config_diff` holds at most [`MAX_CONFIG_DIFF`]).
   */
  config_keys: number,
};

/**
 * One flattened config key across the compared runs.
 */
export type ConfigDiffRow = {
  key: string,
  values: Array<unknown>,
  differs: boolean,
};

/**
 * One run's series `key` over all its points: how many, the last one, the smallest and
 * largest value (NaN left out; `last` is `null` when the last value is NaN).
 */
export type SeriesStatsDto = {
  run: number,
  key: string,
  count: number,
  last_step: number,
  last: number | null,
  min: number | null,
  max: number | null,
};

/**
 * `GET /api/runs/{run}/media`.
 */
export type MediaAnswer = {
  run: number,
  source: MediaSource,
  /**
   * Why the images come from file names (`source` is `file_names`), else null.
   */
  note: string | null,
  /**
   * Sorted by key.
   */
  keys: Array<MediaKey>,
  truncated: boolean,
};

/**
 * The images of one key, by step (images without a step last, by time).
 */
export type MediaKey = {
  key: string,
  images: Array<MediaImage>,
};

/**
 * One logged image.
 */
export type MediaImage = {
  step: number | null,
  caption: string | null,
  /**
   * Unix seconds when it was logged.
   */
  time: number | null,
  /**
   * The file, relative to the run (`media/…`).
   */
  path: string,
  /**
   * Where the dashboard serves the file.
   */
  url: string,
};

/**
 * Where the answer's images come from.
 */
export type MediaSource = "events" | "file_names";

/**
 * `GET /api/runs/{run}/system`.
 */
export type SystemAnswer = {
  run: number,
  source: SystemSource,
  /**
   * True when the run's manifest lists a `system.jsonl` (`source` may still be `none`: the
   * file could not be had, and `note` says why).
   */
  listed: boolean,
  /**
   * Why there is nothing, or that the samples may be behind the run's current file; else null.
   */
  note: string | null,
  /**
   * True when the samples come from an older copy of the file than the run's manifest lists.
   */
  behind: boolean,
  /**
   * Unix seconds of the first sample.
   */
  first_ts: number | null,
  /**
   * Unix seconds the series' times count from: the run's creation, or its first sample when
   * that is earlier or the creation is unknown.
   */
  start_ts: number | null,
  /**
   * Sorted by key.
   */
  keys: Array<SystemSeries>,
  /**
   * The GPU indices (`sys/gpu.N/…`) seen, ascending.
   */
  gpus: Array<number>,
  /**
   * Samples read.
   */
  samples: number,
  /**
   * Complete lines passed over: not JSON, not an object, or not of type `system`.
   */
  skipped: number,
  /**
   * True when only the first [`MAX_SYSTEM_READ`] bytes of the file were read.
   */
  truncated: boolean,
};

/**
 * One `sys/` key's samples, by time.
 */
export type SystemSeries = {
  key: string,
  /**
   * Seconds since `start_ts`.
   */
  times: Array<number>,
  values: Array<number>,
  /**
   * True when the series was thinned to [`MAX_POINTS_PER_KEY`] (each bucket's min and max).
   */
  downsampled: boolean,
};

/**
 * Where the answer's samples come from.
 */
export type SystemSource = "file" | "none";

/**
 * The whole fleet (`Fleet` in docs/api.md).
 */
export type Fleet = {
  remotes: Array<FleetRemote>,
  totals: FleetTotals,
  /**
   * The free rule, for people.
   */
  free_rule: string,
};

/**
 * Counts over every remote listed.
 */
export type FleetTotals = {
  remotes: number,
  /**
   * Remotes with a host sample.
   */
  hosts: number,
  gpus: number,
  free_gpus: number,
  /**
   * GPUs some run of the hub's remotes holds.
   */
  gpus_with_runs: number,
};

/**
 * One remote and its host.
 */
export type FleetRemote = {
  name: string,
  state: RemoteState,
  /**
   * The host's name: the sample's, else the agent's from its handshake.
   */
  host: string | null,
  /**
   * The last time the hub heard from the remote (Unix seconds).
   */
  heard_at: number | null,
  /**
   * When the host was sampled (the agent's clock) and when the hub received it.
   */
  sampled_at: number | null,
  received_at: number | null,
  /**
   * The sample is older than a minute (the remote is offline, or its agent is slow).
   */
  stale: boolean,
  /**
   * The agent cannot report its host (older than the `host` capability) or has not yet.
   */
  sampled: boolean,
  /**
   * Why the agent could not read its GPUs (nvidia-smi failed or hung).
   */
  gpu_error: string | null,
  cpu_count: number | null,
  /**
   * Load averages over 1, 5 and 15 minutes.
   */
  load_avg: Array<number> | null,
  mem_total_mib: number | null,
  mem_available_mib: number | null,
  gpus: Array<FleetGpu>,
  free_gpus: number,
};

/**
 * One GPU.
 */
export type FleetGpu = {
  index: number,
  uuid: string,
  name: string,
  util_percent: number | null,
  mem_used_mib: number | null,
  mem_total_mib: number | null,
  temp_c: number | null,
  power_w: number | null,
  /**
   * See the free rule.
   */
  free: boolean,
  /**
   * The runs holding it (each once), in the order of their processes.
   */
  runs: Array<FleetRun>,
  processes: Array<FleetProcess>,
};

/**
 * A compute process on a GPU.
 */
export type FleetProcess = {
  pid: number,
  used_mib: number | null,
  /**
   * The run whose process tree it is in; `null`: no run of this remote's root (another
   * user's process, or a run the agent does not see).
   */
  run: FleetRun | null,
};

/**
 * A run holding a GPU, named as the runs API names runs.
 */
export type FleetRun = {
  /**
   * The hub's key of the run; `null` until the run is synced.
   */
  key: number | null,
  /**
   * `REMOTE/RUN_ID`, a reference `/api/runs/{run}` and `runicorn-hub ls` take.
   */
  ref: string,
  run_id: string,
  path: string,
  alias: string | null,
  /**
   * The run directory on the remote.
   */
  dir: string,
};

/**
 * `GET /api/artifacts`.
 */
export type ArtifactsAnswer = {
  /**
   * By type, name, remote.
   */
  artifacts: Array<Artifact>,
  /**
   * The types listed, sorted.
   */
  types: Array<string>,
  total_bytes: number,
  stored_bytes: number,
  saved_bytes: number,
  /**
   * Sum of the artifacts' `server_bytes` (per artifact: a chunk two artifacts share counts
   * in both); `null` when no listed artifact has it.
   */
  server_bytes: number | null,
  /**
   * Sum of `total_bytes` over the artifacts that have `server_bytes`.
   */
  server_measured_bytes: number,
  /**
   * `server_measured_bytes - server_bytes`.
   */
  server_saved_bytes: number | null,
};

/**
 * An artifact with its versions, newest first.
 */
export type Artifact = {
  remote: string,
  host: string | null,
  dir: string,
  type: string,
  name: string,
  problem: string | null,
  removed: boolean,
  /**
   * Sum of every version's file sizes.
   */
  total_bytes: number,
  /**
   * Each distinct content once.
   */
  stored_bytes: number,
  /**
   * `total_bytes - stored_bytes`: what dedup saves.
   */
  saved_bytes: number,
  /**
   * What its contents occupy on the server after chunk-level dedup (distinct whole pool
   * files and distinct chunks), as its agent measured it; `null` from older agents.
   */
  server_bytes: number | null,
  /**
   * `total_bytes - server_bytes`: what dedup saves on the server, chunk sharing included.
   */
  server_saved_bytes: number | null,
  versions: Array<ArtifactVersion>,
};

/**
 * One version of an artifact.
 */
export type ArtifactVersion = {
  version: number,
  created_at: number | null,
  description: string | null,
  metadata: unknown,
  size: number,
  file_count: number,
  aliases: Array<string>,
  references: unknown,
  produced_by: RunLink | null,
  used_by: Array<RunLink>,
};

/**
 * A run a version names: its producer or a user. `key` is the hub's run, `null` when the hub
 * does not have it.
 */
export type RunLink = {
  run_id: string,
  dir: string,
  host: string | null,
  key: number | null,
};

/**
 * `GET /api/artifacts/{remote}/{type}/{name}`.
 */
export type ArtifactDetail = {
  artifact: Artifact,
  /**
   * One entry per version, in the order of `artifact.versions`.
   */
  files: Array<VersionFiles>,
};

/**
 * The files of one version, by path; `truncated` when there were more than
 * [`MAX_VERSION_FILES`].
 */
export type VersionFiles = {
  version: number,
  files: Array<ArtifactFile>,
  truncated: boolean,
};

/**
 * One file of a version.
 */
export type ArtifactFile = {
  path: string,
  size: number,
  sha256: string,
  /**
   * `whole`, `chunked` or `missing` on the server.
   */
  stored: string,
};

/**
 * `GET /api/runs/{run}/artifacts`.
 */
export type RunArtifactsAnswer = {
  produced: Array<VersionRef>,
  used: Array<VersionRef>,
  /**
   * The run's upstream `assets.json` (code snapshot, datasets, pretrained models, outputs)
   * as its server has it; `null` when it has none.
   */
  assets: unknown,
  /**
   * The run's remote: a saved asset file's bytes are
   * `GET /api/remotes/{remote}/blobs/{sha256}`.
   */
  remote: string,
  /**
   * `assets` as a flat list, each saved one with where its bytes are on the server.
   */
  asset_entries: Array<RunAsset>,
};

/**
 * One upstream asset of a run (from its `assets.json`), never with the writing machine's
 * absolute paths as locations.
 */
export type RunAsset = {
  /**
   * `code`, `dataset`, `pretrained` or `output`.
   */
  category: string,
  name: string,
  /**
   * Whether the bytes were copied into the server's `archive/`.
   */
  saved: boolean,
  /**
   * `file` or `dir`.
   */
  kind: string,
  /**
   * A saved file's SHA-256: its bytes are the remote's blob of that name.
   */
  sha256: string | null,
  /**
   * Where the saved bytes are, relative to the server's root (`archive/…`).
   */
  archive: string | null,
  size: number | null,
  file_count: number | null,
  /**
   * Where it came from on the writing machine (for display only).
   */
  uri: string | null,
  /**
   * An output's key, a dataset's context, a pretrained model's source type.
   */
  detail: string | null,
  /**
   * An output's archive mode.
   */
  mode: string | null,
  /**
   * Where its bytes download (`/api/remotes/{remote}/blobs/{sha256}`): a saved file held in
   * the server's content-addressed `archive/blobs/`; `null` otherwise (a directory, a
   * rolling copy, a file only recorded: `runicorn-hub fetch assets` copies those).
   */
  download: string | null,
};

/**
 * A version as a run's page and the lineage graph name it.
 */
export type VersionRef = {
  remote: string,
  host: string | null,
  type: string,
  name: string,
  version: number,
  aliases: Array<string>,
  size: number,
  created_at: number | null,
  removed: boolean,
};

/**
 * `GET /api/lineage`.
 */
export type Lineage = {
  /**
   * The id of the node the graph starts from.
   */
  root: string,
  nodes: Array<LineageNode>,
  edges: Array<LineageEdge>,
  /**
   * True when `depth` or `max_nodes` left links out.
   */
  truncated: boolean,
};

/**
 * A node of the lineage graph: `kind` says which of `run` and `version` it holds.
 */
export type LineageNode = {
  /**
   * Unique within the graph; edges name nodes by it.
   */
  id: string,
  /**
   * `run` or `version`.
   */
  kind: "run" | "version",
  run: LineageRun | null,
  version: VersionRef | null,
};

/**
 * A run in the lineage graph; `key` is `null` for a run the hub does not have (only a
 * version names it).
 */
export type LineageRun = {
  key: number | null,
  run_id: string,
  remote: string,
  dir: string,
  host: string | null,
  status: string | null,
};

/**
 * An edge: a run `produced` a version (run → version), or a version was `used` by a run
 * (version → run).
 */
export type LineageEdge = {
  from: string,
  to: string,
  /**
   * `produced` or `used`.
   */
  kind: "produced" | "used",
};

/**
 * What an upload answers.
 */
export type BundleUpload = {
  /**
   * Names the upload in `POST /api/bundles/uploads/{id}/import`.
   */
  id: string,
  name: string,
  size: number,
};

/**
 * What `POST /api/bundles/exports` answers.
 */
export type ExportReady = {
  /**
   * Download it once with `GET /api/bundles/exports/{id}`.
   */
  id: string,
  /**
   * The name to save it under.
   */
  filename: string,
  size: number,
  report: ExportReport,
};

/**
 * What an import did, or would do with `dry_run`.
 */
export type ImportReport = {
  /**
   * Nothing was changed: this is what the import would do.
   */
  dry_run: boolean,
  /**
   * One entry per bundle file, in the order given.
   */
  bundles: Array<ImportedBundle>,
  totals: ImportTotals,
};

/**
 * One bundle file of an import.
 */
export type ImportedBundle = {
  /**
   * The file as the user named it (`-` for standard input, the upload's name in the API).
   */
  file: string,
  kind: BundleKind,
  /**
   * Creation time written in the bundle (seconds since the epoch), when it says.
   */
  created_at: number | null,
  /**
   * One entry per storage root the bundle carries (an agent's export has one; a hub's
   * export one per remote).
   */
  sources: Array<ImportedSource>,
};

/**
 * What kind of file a bundle is.
 */
export type BundleKind = "runicorn" | "upstream_tar" | "upstream_zip";

/**
 * One storage root of a bundle and the remote its runs go to.
 */
export type ImportedSource = {
  /**
   * The remote the runs are stored under (the bundle's source name, or `--as`).
   */
  remote: string,
  /**
   * The remote did not exist before this import.
   */
  remote_created: boolean,
  /**
   * The machine and root the bundle says the runs came from.
   */
  host: string | null,
  root: string | null,
  runs: Array<ImportedRun>,
  /**
   * Artifacts inserted or updated.
   */
  artifacts: number,
};

/**
 * One run of an import and what happened to it.
 */
export type ImportedRun = {
  /**
   * Run directory relative to its root (the run's key on its remote).
   */
  dir: string,
  run_id: string,
  path: string,
  status: string,
  verdict: RunVerdict,
};

/**
 * What an import does to one run.
 */
export type RunVerdict = "new" | "updated" | "unchanged" | "older";

/**
 * Sums over every bundle of an import.
 */
export type ImportTotals = {
  runs_new: number,
  runs_updated: number,
  runs_unchanged: number,
  runs_older: number,
  /**
   * Metric points stored (in a dry run: that would be stored).
   */
  points: number,
  log_bytes: number,
  /**
   * Run files whose bytes came into the file cache, and their bytes.
   */
  files: number,
  file_bytes: number,
};

/**
 * What an export wrote.
 */
export type ExportReport = {
  /**
   * Where it went (`-` for standard output).
   */
  file: string,
  runs: number,
  /**
   * Files listed in the manifest, with their bytes inside and those only listed
   * (`--metadata-only`, or not in the hub's cache).
   */
  members: number,
  omitted: number,
  /**
   * Distinct contents written (files sharing bytes count once) and their bytes.
   */
  contents: number,
  content_bytes: number,
  /**
   * Size of the bundle file.
   */
  bundle_bytes: number,
  /**
   * Artifact versions carried (`with_artifacts`), each with its manifest and metadata.
   */
  artifact_versions: number,
  /**
   * Files left out and why (links, devices).
   */
  skipped: Array<ExportSkipped>,
};

/**
 * A file an export left out.
 */
export type ExportSkipped = {
  path: string,
  reason: string,
};

/**
 * Why an import was refused: the message names the bundle, the member (when one is to
 * blame) and what to do. Nothing was imported.
 */
export type BundleFailure = {
  message: string,
  /**
   * The bundle member to blame, when one is.
   */
  member: string | null,
};

/**
 * The body of `400 bad_bundle`: the API's error shape with the member to blame.
 */
export type BundleRefused = {
  error: BundleRefusedDetail,
};

/**
 * Why a bundle was refused: `code` is `bad_bundle`; nothing was imported.
 */
export type BundleRefusedDetail = {
  code: string,
  message: string,
  /**
   * The bundle member to blame, when one is.
   */
  member: string | null,
};

export type ApiErrorBody = {
  error: ApiErrorDetail,
  candidates?: Array<RunCandidate>,
};

export type ApiErrorDetail = {
  code: string,
  message: string,
  /**
   * `bad_filter`: 0-based character offset of the offending token in the expression.
   */
  position?: number,
  /**
   * `bad_filter`: the token's length in characters (0 at the end of the expression).
   */
  length?: number,
};

/**
 * One run an ambiguous reference may mean: `{"key", "remote", "run_id"}`.
 */
export type RunCandidate = {
  key: number,
  remote: string,
  run_id: string,
};
