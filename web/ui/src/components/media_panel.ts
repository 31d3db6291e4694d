/**
 * Media panels: a run's images grouped by key, each panel showing one image with its step and
 * caption (never the internal file name) and a step slider over that key's images; and, for a
 * comparison, the same key side by side across runs under one slider, each run showing its
 * image at the chosen step (its last image at or before it). Images load through the file
 * route, so the hub fetches them from their server on first view; one that cannot be had says
 * so in place.
 */
import type { MediaAnswer, MediaImage } from "../api";
import { h } from "../lib/dom";
import { formatNumber } from "../lib/format";

function picture(image: MediaImage | undefined, alt: string): HTMLElement {
  if (!image) return h("div", { class: "media-missing muted small" }, "no image at or before this step");
  const img = h("img", { src: image.url, alt, class: "media-img" });
  const box = h("a", { href: image.url, target: "_blank", attrs: { rel: "noopener" } }, img);
  img.addEventListener("error", () => box.replaceWith(h("div", { class: "media-missing muted small" }, "not available: its server is unreachable and the hub has no copy")));
  return box;
}

function label(image: MediaImage | undefined): HTMLElement {
  return h(
    "div",
    { class: "media-label small" },
    h("span", { class: "media-step" }, image?.step !== null && image?.step !== undefined ? `step ${formatNumber(image.step)}` : "step –"),
    image?.caption ? h("span", { class: "media-caption muted" }, ` · ${image.caption}`) : null,
  );
}

function slider(count: number, value: number, onInput: (i: number) => void, name: string): HTMLInputElement {
  const input = h("input", {
    type: "range",
    min: "0",
    max: String(Math.max(0, count - 1)),
    step: "1",
    value: String(value),
    class: "media-slider",
    disabled: count <= 1,
    attrs: { "aria-label": `Step of ${name}` },
  });
  input.addEventListener("input", () => onInput(Number(input.value)));
  return input;
}

/** A note when the images' steps and captions could not be read (from file names only). */
function sourceNote(a: MediaAnswer): HTMLElement | null {
  if (a.source === "events") return a.truncated ? h("p", { class: "muted small" }, "Only the first images are listed.") : null;
  return h("p", { class: "muted small media-note" }, `Keys from the file names only (no steps or captions): ${a.note ?? ""}`);
}

/** One panel per key of one run, each with its own step slider (at the last image first). */
export function mediaPanels(a: MediaAnswer): HTMLElement {
  if (a.keys.length === 0) return h("p", { class: "muted" }, "This run has logged no images.");
  return h(
    "div",
    { class: "media" },
    sourceNote(a),
    h(
      "div",
      { class: "media-panels" },
      ...a.keys.map((k) => {
        const frame = h("div", { class: "media-frame" });
        const caption = h("div");
        const show = (i: number) => {
          const image = k.images[i];
          frame.replaceChildren(picture(image, `${k.key} ${image?.step ?? ""}`));
          caption.replaceChildren(label(image));
          panel.dataset.index = String(i);
        };
        const last = k.images.length - 1;
        const panel = h(
          "section",
          { class: "media-panel", dataset: { key: k.key } },
          h("h4", {}, k.key, h("span", { class: "muted small" }, ` ${k.images.length} image${k.images.length === 1 ? "" : "s"}`)),
          frame,
          caption,
          slider(k.images.length, last, show, k.key),
        );
        show(last);
        return panel;
      }),
    ),
  );
}

export interface MediaRun {
  name: string;
  colour: string;
  answer: MediaAnswer;
}

/** The image of `images` (sorted by step) at `step`: the last one at or before it. */
export function imageAtStep(images: readonly MediaImage[], step: number): MediaImage | undefined {
  let found: MediaImage | undefined;
  for (const im of images) {
    if (im.step === null) continue;
    if (im.step <= step) found = im;
    else break;
  }
  return found;
}

/** Each key any run logged, the runs side by side under one slider over all their steps. */
export function mediaCompare(runs: readonly MediaRun[]): HTMLElement {
  const keys = [...new Set(runs.flatMap((r) => r.answer.keys.map((k) => k.key)))].sort();
  if (keys.length === 0) return h("p", { class: "muted" }, "These runs have logged no images.");
  return h(
    "div",
    { class: "media" },
    ...keys.map((key) => {
      const perRun = runs.map((r) => r.answer.keys.find((k) => k.key === key)?.images ?? []);
      const steps = [...new Set(perRun.flatMap((ims) => ims.flatMap((im) => (im.step === null ? [] : [im.step]))))].sort((a, b) => a - b);
      const cells = runs.map((r) => {
        const cell = h("figure", { class: "media-cell" });
        return { r, cell };
      });
      const stepLabel = h("span", { class: "media-step" });
      const show = (i: number) => {
        const step = steps[i];
        stepLabel.textContent = step === undefined ? "no steps" : `step ${formatNumber(step)}`;
        cells.forEach(({ r, cell }, j) => {
          // Images without steps (file names only): the run's last image.
          const image = step === undefined ? perRun[j]!.at(-1) : imageAtStep(perRun[j]!, step);
          cell.dataset.step = image?.step === null || image?.step === undefined ? "" : String(image.step);
          cell.replaceChildren(
            h("figcaption", { class: "small" }, h("span", { class: "swatch", style: { background: r.colour } }), r.name),
            perRun[j]!.length === 0 ? h("div", { class: "media-missing muted small" }, "no images of this key") : picture(image, `${r.name} ${key}`),
            label(image),
          );
        });
        row.dataset.index = String(i);
      };
      const last = Math.max(0, steps.length - 1);
      const row = h(
        "section",
        { class: "media-panel media-row", dataset: { key } },
        h("h4", {}, key, " ", stepLabel),
        slider(steps.length, last, show, key),
        h("div", { class: "media-side" }, ...cells.map((c) => c.cell)),
      );
      show(last);
      return row;
    }),
  );
}
