/**
 * The controls shared by every chart on a page: EMA smoothing (0–0.99), log y axis, and the x
 * axis (step, wall-clock time, time since start). The choice is remembered in localStorage.
 */
import { h, store } from "../lib/dom";
import type { XMode } from "./chart";

export interface ChartSettings {
  smoothing: number;
  logY: boolean;
  x: XMode;
}

const KEY = "runicorn.chart";

export function loadSettings(): ChartSettings {
  const d: ChartSettings = { smoothing: 0.6, logY: false, x: "step" };
  try {
    const v = JSON.parse(store.get(KEY) ?? "{}") as Partial<ChartSettings>;
    if (typeof v.smoothing === "number" && v.smoothing >= 0 && v.smoothing <= 0.99) d.smoothing = v.smoothing;
    if (typeof v.logY === "boolean") d.logY = v.logY;
    if (v.x === "step" || v.x === "time" || v.x === "relative") d.x = v.x;
  } catch {
    /* keep the defaults */
  }
  return d;
}

/** The control bar; `onChange` gets the new settings (already saved). */
export function chartControls(settings: ChartSettings, onChange: (s: ChartSettings) => void, extra: Node[] = []): HTMLElement {
  const s = { ...settings };
  const slider = h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    value: String(s.smoothing),
    class: "smoothing",
    attrs: { "aria-label": "Smoothing" },
  });
  const sliderValue = h("span", { class: "num smoothing-value" }, s.smoothing.toFixed(2));
  const log = h("input", { type: "checkbox", checked: s.logY, class: "log-y" });
  const x = h(
    "select",
    { class: "x-mode", attrs: { "aria-label": "X axis" } },
    h("option", { value: "step", selected: s.x === "step" }, "Step"),
    h("option", { value: "time", selected: s.x === "time" }, "Wall time"),
    h("option", { value: "relative", selected: s.x === "relative" }, "Relative time"),
  );
  const changed = () => {
    store.set(KEY, JSON.stringify(s));
    onChange({ ...s });
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  slider.addEventListener("input", () => {
    s.smoothing = Number(slider.value);
    sliderValue.textContent = s.smoothing.toFixed(2);
    if (timer) clearTimeout(timer);
    timer = setTimeout(changed, 60);
  });
  log.addEventListener("change", () => {
    s.logY = log.checked;
    changed();
  });
  x.addEventListener("change", () => {
    s.x = x.value as XMode;
    changed();
  });
  return h(
    "div",
    { class: "toolbar chart-controls" },
    h("label", { class: "check" }, "Smoothing ", slider, sliderValue),
    h("label", { class: "check" }, log, " Log y"),
    h("label", { class: "check" }, "X ", x),
    h("span", { class: "muted small" }, "Drag to zoom, double-click to reset"),
    ...extra,
  );
}
