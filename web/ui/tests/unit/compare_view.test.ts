import { beforeEach, describe, expect, it } from "vitest";
import { loadCompareView, lowerIsBetter, saveCompareView, viewParams } from "../../src/lib/compare_view";

// The unit tests run in node: a Map stands in for the browser's localStorage.
const saved = new Map<string, string>();
(globalThis as { localStorage?: unknown }).localStorage = {
  getItem: (k: string) => saved.get(k) ?? null,
  setItem: (k: string, v: string) => void saved.set(k, v),
};

describe("compare view", () => {
  beforeEach(() => saved.clear());
  it("reads the URL first and round-trips through its parameters", () => {
    const v = loadCompareView(new URLSearchParams("runs=1,2&group=config.optimizer&band=std&axes=config.lr,metric.loss&smooth=0.3"));
    expect(v).toEqual({ group: "config.optimizer", band: "std", axes: ["config.lr", "metric.loss"], smoothing: 0.3 });
    const again = loadCompareView(new URLSearchParams(viewParams(v)));
    expect(again).toEqual(v);
  });
  it("falls back to the browser's last view when the URL names none", () => {
    saveCompareView({ group: "path", band: "minmax", axes: null, smoothing: null });
    expect(loadCompareView(new URLSearchParams("runs=1,2")).group).toBe("path");
    expect(loadCompareView(new URLSearchParams("runs=1,2&band=std")).group).toBe("");
  });
  it("ranks loss-like keys low-is-better", () => {
    expect(lowerIsBetter("val_loss")).toBe(true);
    expect(lowerIsBetter("train/error_rate")).toBe(true);
    expect(lowerIsBetter("val_acc")).toBe(false);
  });
});
