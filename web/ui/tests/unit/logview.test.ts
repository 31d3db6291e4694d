import { describe, expect, it } from "vitest";
import { PLAIN } from "../../src/lib/ansi";
import { findMatches, splitLines } from "../../src/components/logview";
import { liveStep } from "../../src/pages/run_logs";

describe("log helpers", () => {
  it("finds matches case-insensitively", () => {
    expect(findMatches("Loss loss LOSS", "loss")).toEqual([[0, 4], [5, 9], [10, 14]]);
    expect(findMatches("abc", "")).toEqual([]);
  });
  it("splits styled segments into lines", () => {
    const red = { ...PLAIN, fg: "#f00" };
    const lines = splitLines([
      { text: "a\nb", style: PLAIN },
      { text: "c\n", style: red },
    ]);
    expect(lines).toEqual([[{ text: "a", style: PLAIN }], [{ text: "b", style: PLAIN }, { text: "c", style: red }], []]);
  });
  it("places live log events by the server's byte offsets only", () => {
    // An event's text may be longer than its bytes (U+FFFD per invalid byte): only offsets count.
    expect(liveStep(10, { offset: 10, next: 14 })).toEqual({ kind: "append" });
    expect(liveStep(14, { offset: 10, next: 14 })).toEqual({ kind: "skip" });
    expect(liveStep(12, { offset: 10, next: 14 })).toEqual({ kind: "fetch", from: 12, to: 14 });
    expect(liveStep(8, { offset: 10, next: 14 })).toEqual({ kind: "fetch", from: 8, to: 14 });
  });
});
