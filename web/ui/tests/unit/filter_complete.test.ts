import { describe, expect, it } from "vitest";
import { allKeys, applyCompletion, complete, quoteKey } from "../../src/lib/filter_complete";

const known = { summary: ["val_acc", "loss"], config: ["lr", "optimizer", "optim.name", "my key"], metrics: ["loss"] };

describe("filter completion", () => {
  it("lists every key the language takes", () => {
    expect(allKeys(known)).toEqual([
      "summary.val_acc",
      "summary.loss",
      "config.lr",
      "config.optimizer",
      "config.optim.name",
      "config.`my key`",
      "metric.loss.last",
      "metric.loss.min",
      "metric.loss.max",
    ]);
    expect(quoteKey("config.a-b")).toBe("config.a-b");
    expect(quoteKey("summary.val acc`s")).toBe("summary.`val acc``s`");
    expect(quoteKey("config.x=y")).toBe("config.`x=y`");
  });

  it("completes the word under the cursor by prefix, then by a later segment", () => {
    const c = complete("config.opt", 10, known)!;
    expect(c).toEqual({ from: 0, to: 10, items: ["config.optimizer", "config.optim.name"] });
    const l = complete('status = "failed" and lo', 24, known)!;
    expect(l.from).toBe(22);
    expect(l.items).toEqual(["summary.loss", "metric.loss.last", "metric.loss.min", "metric.loss.max"]);
    expect(complete("metric.loss.m", 13, known)!.items).toEqual(["metric.loss.min", "metric.loss.max"]);
    expect(complete("st", 2, known)!.items).toEqual(["status"]);
  });

  it("offers nothing inside a string, after tag:, or for an empty word", () => {
    expect(complete('path = "conf', 12, known)).toBeNull();
    expect(complete("tag:be", 6, known)).toBeNull();
    expect(complete("lr = ", 5, known)).toBeNull();
  });

  it("completes the key after has:", () => {
    const c = complete("has:val", 7, known)!;
    expect(c).toEqual({ from: 4, to: 7, items: ["summary.val_acc"] });
    expect(applyCompletion("has:val", c, c.items[0]!)).toEqual({ text: "has:summary.val_acc ", cursor: 20 });
  });

  it("replaces the whole word and leaves a space before the operator", () => {
    const text = "config.op > 1";
    const c = complete(text, 5, known)!;
    expect(applyCompletion(text, c, "config.optimizer")).toEqual({ text: "config.optimizer > 1", cursor: 16 });
  });

  it("offers statuses after status = and status !=", () => {
    const c = complete("status = ", 9, known)!;
    expect(c.from).toBe(9);
    expect(c.items).toContain('"crashed"');
    expect(c.items).toContain('"stalled"');
    const f = complete('tag:x and status != "f', 22, known)!;
    expect(f).toEqual({ from: 20, to: 22, items: ['"finished"', '"failed"'] });
    expect(applyCompletion('status != "f', { from: 10, to: 12, items: [] }, '"failed"').text).toBe('status != "failed" ');
  });
});
