/**
 * Importing an offline bundle from the page: a file dropped anywhere on the dashboard (or
 * picked with the "Import bundle" button) is uploaded, checked by a dry run whose preview says
 * what would change (per source: the remote, runs new/updated/unchanged/older, each run with
 * its verdict, the bytes), then imported on "Import" or left on "Cancel". A refused bundle
 * shows the hub's message and the member to blame. The runs table refreshes from the
 * store-changed stream once the import is in.
 */
import { ApiError, bundlesApi } from "../api";
import type { BundleUpload, ImportReport, ImportedSource, RunVerdict } from "../api";
import { code, h, message, replace } from "../lib/dom";
import { formatBytes, formatNumber } from "../lib/format";
import { buildHash } from "../router";

const VERDICTS: RunVerdict[] = ["new", "updated", "unchanged", "older"];

const VERDICT_HELP: Record<RunVerdict, string> = {
  new: "not in the hub yet",
  updated: "the bundle's copy is further along",
  unchanged: "the hub holds exactly this",
  older: "the hub's copy is further along and is kept",
};

/** The one open import dialog, if any. */
let open: { el: HTMLElement; close: () => void } | null = null;

/** Closes the import dialog; true when one was open. */
export function closeBundleDialog(): boolean {
  if (!open) return false;
  open.close();
  return true;
}

/** Opens a file picker and imports the chosen file. */
export function pickBundle(): void {
  const input = h("input", { type: "file", class: "bundle-file-input", attrs: { accept: ".rbundle,.zst,.tar.gz,.tgz,.zip,application/zstd,application/gzip,application/zip" } });
  input.style.display = "none";
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.remove();
    if (file) importBundle(file);
  });
  document.body.append(input);
  input.click();
}

/** Installs the page-wide drop target (main.ts, once). */
export function installBundleDrop(): void {
  const overlay = h("div", { class: "bundle-drop", attrs: { "aria-hidden": "true" } }, h("div", { class: "bundle-drop-card" }, "Drop a bundle to import it"));
  let depth = 0;
  const hasFiles = (ev: DragEvent) => [...(ev.dataTransfer?.types ?? [])].includes("Files");
  const hide = () => {
    depth = 0;
    overlay.remove();
  };
  window.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    depth += 1;
    if (!overlay.isConnected) document.body.append(overlay);
  });
  window.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (ev) => {
    if (!hasFiles(ev)) return;
    depth -= 1;
    if (depth <= 0) hide();
  });
  window.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    hide();
    const file = ev.dataTransfer?.files[0];
    if (file) importBundle(file);
  });
  // While the dialog is open, keys are its own: Escape closes it, and the page's shortcuts
  // (j/k, x, c…) do not act on the table behind it (typing and buttons still work: those are
  // default actions).
  window.addEventListener(
    "keydown",
    (ev) => {
      if (!open) return;
      ev.stopPropagation();
      if (ev.key === "Escape") {
        ev.preventDefault();
        closeBundleDialog();
      }
    },
    { capture: true },
  );
}

/** Uploads `file`, shows its dry run, and imports it on confirmation. */
export function importBundle(file: File): void {
  closeBundleDialog();
  const body = h("div", { class: "bundle-body" });
  const actions = h("div", { class: "bundle-actions" });
  const title = h("h2", {}, "Import ", h("span", { class: "bundle-name" }, file.name));
  const card = h("div", { class: "bundle-card" }, title, body, actions);
  const el = h("div", { class: "bundle-dialog", attrs: { role: "dialog", "aria-modal": "true", "aria-label": `Import ${file.name}` } }, card);
  let closed = false;
  const close = () => {
    closed = true;
    el.remove();
    if (open?.el === el) open = null;
  };
  el.addEventListener("click", (ev) => {
    if (ev.target === el) close();
  });
  document.body.append(el);
  open = { el, close };

  const cancelBtn = h("button", { type: "button", class: "btn bundle-cancel" }, "Cancel");
  cancelBtn.addEventListener("click", close);
  const failed = (what: string, e: unknown) => {
    if (closed) return;
    replace(body, refusal(what, e));
    const closeBtn = h("button", { type: "button", class: "btn bundle-close" }, "Close");
    closeBtn.addEventListener("click", close);
    replace(actions, closeBtn);
    closeBtn.focus();
  };

  const progress = h("progress", { class: "bundle-progress", max: file.size || 1, value: 0 });
  const progressText = h("span", { class: "muted" }, `Uploading ${formatBytes(file.size)}…`);
  replace(body, h("div", { class: "bundle-status" }, progressText, progress));
  replace(actions, cancelBtn);

  let upload: BundleUpload | null = null;
  const asRemote = h("input", { type: "text", class: "bundle-as-remote", placeholder: "as in the bundle", attrs: { "aria-label": "Import under remote", spellcheck: "false" } });
  const importBtn = h("button", { type: "button", class: "btn primary bundle-confirm" }, "Import");
  const remoteName = () => asRemote.value.trim() || null;

  const preview = async () => {
    if (!upload || closed) return;
    replace(body, message("loading", "Checking the bundle…"));
    replace(actions, cancelBtn);
    try {
      const report = await bundlesApi.importUpload(upload.id, true, remoteName());
      if (closed) return;
      replace(body, previewOf(report, asRemote));
      replace(actions, cancelBtn, importBtn);
      importBtn.disabled = false;
      importBtn.focus();
    } catch (e) {
      failed("The bundle was refused", e);
    }
  };
  asRemote.addEventListener("change", () => void preview());

  importBtn.addEventListener("click", async () => {
    if (!upload) return;
    importBtn.disabled = true;
    importBtn.textContent = "Importing…";
    try {
      const report = await bundlesApi.importUpload(upload.id, false, remoteName());
      if (closed) return;
      replace(body, doneOf(report));
      const closeBtn = h("button", { type: "button", class: "btn primary bundle-close" }, "Close");
      closeBtn.addEventListener("click", close);
      replace(actions, closeBtn);
      closeBtn.focus();
      window.dispatchEvent(new Event("runicorn:changed"));
    } catch (e) {
      failed("Nothing was imported", e);
    } finally {
      importBtn.textContent = "Import";
    }
  });

  void (async () => {
    try {
      upload = await bundlesApi.upload(file, (sent, total) => {
        progress.max = total || 1;
        progress.value = sent;
        progressText.textContent = `Uploading ${formatBytes(sent)} of ${formatBytes(total)}…`;
      });
    } catch (e) {
      failed("The upload failed", e);
      return;
    }
    await preview();
  })();
}

/** The error box of a refused bundle or a failed request: the message and the member. */
function refusal(what: string, e: unknown): HTMLElement {
  const err = e as Error;
  const member = e instanceof ApiError ? e.member : null;
  return message(
    "error",
    h("strong", {}, `${what}. `),
    h("span", { class: "bundle-error-message" }, err.message),
    member ? h("div", { class: "bundle-member" }, "Member: ", code(member)) : null,
  );
}

/** Counts of a source's runs by verdict. */
function counts(source: ImportedSource): Record<RunVerdict, number> {
  const c: Record<RunVerdict, number> = { new: 0, updated: 0, unchanged: 0, older: 0 };
  for (const r of source.runs) c[r.verdict] += 1;
  return c;
}

function verdictBadge(v: RunVerdict): HTMLElement {
  return h("span", { class: `verdict verdict-${v}`, title: VERDICT_HELP[v] }, v);
}

/** The dry run's preview: what each source would do. */
function previewOf(report: ImportReport, asRemote: HTMLInputElement): HTMLElement {
  const t = report.totals;
  const plural = (n: number, word: string) => `${formatNumber(n)} ${word}${n === 1 ? "" : "s"}`;
  const parts = [
    Number(t.runs_new) > 0 ? `adds ${plural(Number(t.runs_new), "new run")}` : "",
    Number(t.runs_updated) > 0 ? `updates ${plural(Number(t.runs_updated), "run")}` : "",
  ].filter(Boolean);
  const summary = h(
    "p",
    { class: "bundle-summary" },
    parts.length === 0
      ? "The hub already holds everything in this bundle: importing changes nothing."
      : `Importing ${parts.join(" and ")}: ${formatNumber(t.points)} points, ${formatBytes(Number(t.log_bytes))} of logs, ` +
          `${plural(Number(t.files), "file")} (${formatBytes(Number(t.file_bytes))}).`,
  );
  const sources = report.bundles.flatMap((b) => b.sources.map((s) => sourceOf(s)));
  const remoteRow = h("label", { class: "bundle-remote-row" }, "Import under remote ", asRemote, h("span", { class: "muted small" }, " (leave empty to keep the bundle's names)"));
  return h("div", { class: "bundle-preview" }, summary, remoteRow, ...sources);
}

function sourceOf(s: ImportedSource): HTMLElement {
  const c = counts(s);
  const origin = [s.host, s.root].filter(Boolean).join(":");
  const rows = s.runs.map((r) =>
    h("tr", { class: `bundle-run verdict-row-${r.verdict}`, dataset: { runId: r.run_id } }, h("td", {}, r.run_id), h("td", { class: "muted" }, r.path || "—"), h("td", {}, r.status), h("td", {}, verdictBadge(r.verdict))),
  );
  return h(
    "section",
    { class: "bundle-source", dataset: { remote: s.remote } },
    h(
      "h3",
      {},
      "Remote ",
      h("span", { class: "bundle-remote" }, s.remote),
      s.remote_created ? h("span", { class: "muted small" }, " (new remote)") : null,
      origin ? h("span", { class: "muted small" }, ` from ${origin}`) : null,
    ),
    h(
      "div",
      { class: "bundle-counts" },
      ...VERDICTS.map((v) => h("span", { class: `bundle-count count-${v}`, title: VERDICT_HELP[v] }, h("strong", {}, formatNumber(c[v])), ` ${v}`)),
      Number(s.artifacts) > 0 ? h("span", { class: "bundle-count" }, h("strong", {}, formatNumber(s.artifacts)), " artifacts") : null,
    ),
    rows.length
      ? h(
          "div",
          { class: "bundle-runs-box" },
          h("table", { class: "bundle-runs" }, h("thead", {}, h("tr", {}, h("th", {}, "Run"), h("th", {}, "Path"), h("th", {}, "Status"), h("th", {}, "Verdict"))), h("tbody", {}, ...rows)),
        )
      : h("p", { class: "muted" }, "No runs."),
  );
}

/** What the import did. */
function doneOf(report: ImportReport): HTMLElement {
  const t = report.totals;
  const remotes = [...new Set(report.bundles.flatMap((b) => b.sources.map((s) => s.remote)))];
  return h(
    "div",
    { class: "bundle-done", attrs: { role: "status" } },
    h(
      "p",
      {},
      `Imported: ${formatNumber(t.runs_new)} new, ${formatNumber(t.runs_updated)} updated, ${formatNumber(t.runs_unchanged)} unchanged` +
        (Number(t.runs_older) > 0 ? `, ${formatNumber(t.runs_older)} kept (the hub's copy is further along)` : "") +
        ".",
    ),
    h("p", {}, "The runs are under ", ...remotes.flatMap((r, i) => [i > 0 ? ", " : "", h("a", { href: buildHash("runs", { remote: r }) }, r)]), "."),
  );
}
