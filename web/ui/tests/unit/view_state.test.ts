import { beforeEach, describe, expect, it } from "vitest";
import { joinList, rememberView, rememberedView, resolveView, splitList } from "../../src/lib/view_state";

// A Map-backed localStorage for the node environment.
const mem = new Map<string, string>();
beforeEach(() => {
  mem.clear();
  (globalThis as unknown as { localStorage: Storage }).localStorage = {
    getItem: (k: string) => mem.get(k) ?? null,
    setItem: (k: string, v: string) => void mem.set(k, v),
    removeItem: (k: string) => void mem.delete(k),
    clear: () => mem.clear(),
    key: () => null,
    length: 0,
  };
});

const KEYS = ["q", "sort", "cols", "group"];

describe("view state", () => {
  it("uses the remembered view when the URL names none", () => {
    rememberView("runs", { q: "lr", sort: "path", cols: "summary.acc,config.lr", group: "" });
    expect(rememberedView("runs")).toEqual({ q: "lr", sort: "path", cols: "summary.acc,config.lr" });
    expect(resolveView("runs", new URLSearchParams(""), KEYS)).toEqual({ q: "lr", sort: "path", cols: "summary.acc,config.lr" });
  });

  it("takes the URL as the whole view when it names any key, sticky keys falling back", () => {
    rememberView("runs", { q: "lr", sort: "path", cols: "summary.acc" });
    const p = new URLSearchParams("sort=status&other=1");
    expect(resolveView("runs", p, KEYS)).toEqual({ sort: "status" });
    expect(resolveView("runs", p, KEYS, ["cols"])).toEqual({ sort: "status", cols: "summary.acc" });
    expect(resolveView("runs", new URLSearchParams("cols=config.x"), KEYS, ["cols"])).toEqual({ cols: "config.x" });
  });

  it("survives junk in storage and keeps pages apart", () => {
    mem.set("runicorn.view.runs", "not json");
    expect(rememberedView("runs")).toEqual({});
    mem.set("runicorn.view.runs", JSON.stringify({ q: 3, sort: "path" }));
    expect(rememberedView("runs")).toEqual({ sort: "path" });
    expect(rememberedView("trash")).toEqual({});
  });

  it("splits and joins lists", () => {
    expect(splitList(" a, b,,a ,c")).toEqual(["a", "b", "c"]);
    expect(splitList(null)).toEqual([]);
    expect(joinList(["a", "b"])).toBe("a,b");
  });
});
