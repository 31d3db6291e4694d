/**
 * Key completion for the runs filter box (the filter language of `GET /api/runs?q=`, docs/api.md
 * "Filter language"): which keys to offer for the word under the cursor, and where the chosen
 * one goes. Pure, so it is unit-tested; the box itself is components/filter_box.ts.
 */

/** The keys the API knows across runs (`GET /api/columns`). */
export interface KnownKeys {
  summary: readonly string[];
  config: readonly string[];
  metrics?: readonly string[];
}

/** Completions for the word from `from` to `to` (character offsets into the text). */
export interface Completion {
  from: number;
  to: number;
  items: string[];
}

/** The run fields of the language, besides `config.*`, `summary.*` and `metric.*`. */
export const FIELDS = ["path", "alias", "tags", "host", "remote", "status", "run_id", "tag:", "has:"] as const;

/** The statistics a metric key takes: `metric.<name>.last|min|max`. */
export const METRIC_STATS = ["last", "min", "max"] as const;

const MAX_ITEMS = 12;
const WORD_CHAR = /[A-Za-z0-9_.:\-/`]/;
/** A stretch of a key the language reads bare: no space, quote, backtick, operator or colon. */
const BARE_SEGMENT = /^[^\s()"`=!<>~:]+$/;

/** A key written so the language reads it back: `config.` then each dot-separated part bare,
 * or in backticks (a backtick doubled) when it has a space or an operator character. */
export function quoteKey(key: string): string {
  return key
    .split(".")
    .map((part) => (BARE_SEGMENT.test(part) ? part : `\`${part.replace(/`/g, "``")}\``))
    .join(".");
}

/** Every key the language takes over these known keys, in a stable order. */
export function allKeys(known: KnownKeys): string[] {
  const out: string[] = [];
  for (const k of known.summary) out.push(quoteKey(`summary.${k}`));
  for (const k of known.config) out.push(quoteKey(`config.${k}`));
  for (const m of known.metrics ?? []) for (const s of METRIC_STATS) out.push(quoteKey(`metric.${m}.${s}`));
  return out;
}

/** The keys `has:` takes: every key, and a metric by its name alone. */
function hasKeys(known: KnownKeys): string[] {
  return [...allKeys(known), ...(known.metrics ?? []).map((m) => quoteKey(`metric.${m}`))];
}

/** True when the cursor sits inside a double-quoted string (a value, not a key). */
function inString(text: string, cursor: number): boolean {
  let quoted = false;
  for (let i = 0; i < cursor; i++) {
    if (text[i] === "\\" && quoted) i++;
    else if (text[i] === '"') quoted = !quoted;
  }
  return quoted;
}

/** The statuses a run can have, offered after `status =` / `status !=`. */
export const STATUS_VALUES = ["running", "stalled", "finished", "failed", "crashed", "killed", "interrupted", "unreadable", "unknown"] as const;

/** After `status =` (or `!=`): the statuses, quoted, that start with what is typed. */
function completeStatus(text: string, cursor: number): Completion | null {
  const m = /\bstatus\s*!?=\s*("?)([a-z]*)$/i.exec(text.slice(0, cursor));
  if (!m) return null;
  const typed = m[2]!.toLowerCase();
  const from = cursor - m[1]!.length - m[2]!.length;
  let to = cursor;
  while (to < text.length && /[a-z"]/i.test(text[to]!)) to++;
  const items = STATUS_VALUES.filter((s) => s.startsWith(typed) && s !== typed).map((s) => `"${s}"`);
  return items.length ? { from, to, items } : null;
}

/** The keys to offer for the word that ends at `cursor`, or null when there is nothing to offer. */
export function complete(text: string, cursor: number, known: KnownKeys): Completion | null {
  const status = completeStatus(text, cursor);
  if (status) return status;
  if (inString(text, cursor)) return null;
  let from = cursor;
  while (from > 0 && WORD_CHAR.test(text[from - 1]!)) from--;
  let to = cursor;
  while (to < text.length && WORD_CHAR.test(text[to]!)) to++;
  let word = text.slice(from, cursor);
  let start = from;
  // `has:config.x`: complete the key after the prefix.
  const prefix = /^has:/i.exec(word);
  if (prefix) {
    start = from + prefix[0].length;
    word = word.slice(prefix[0].length);
  } else if (/^tag:/i.test(word)) return null;
  const w = word.replace(/`/g, "").toLowerCase();
  if (w.length === 0) return null;
  const candidates = prefix ? hasKeys(known) : [...FIELDS, ...allKeys(known)];
  const first: string[] = [];
  const then: string[] = [];
  for (const c of candidates) {
    const bare = c.replace(/`/g, "").toLowerCase();
    if (bare === w) continue;
    if (bare.startsWith(w)) first.push(c);
    else if (!w.includes(".") && bare.split(".").some((part, i) => i > 0 && part.startsWith(w))) then.push(c);
  }
  const items = [...first, ...then].slice(0, MAX_ITEMS);
  return items.length ? { from: start, to, items } : null;
}

/** The text with the completion applied, and where the cursor goes. */
export function applyCompletion(text: string, c: Completion, item: string): { text: string; cursor: number } {
  const before = text.slice(0, c.from) + item;
  const after = text.slice(c.to);
  // After a full key the next thing is an operator: leave a space (not after `tag:`/`has:`).
  const spaced = item.endsWith(":") || after.startsWith(" ") ? before : `${before} `;
  return { text: spaced + after, cursor: spaced.length };
}
