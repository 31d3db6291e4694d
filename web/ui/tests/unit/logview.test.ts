import { describe, expect, it } from "vitest";
import { PLAIN } from "../../src/lib/ansi";
import { findMatches, splitLines } from "../../src/components/logview";
import { bytesFrom } from "../../src/pages/run_logs";

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
  it("cuts text at a byte offset", () => {
    expect(bytesFrom("héllo", 10, 10)).toBe("héllo");
    expect(bytesFrom("héllo", 10, 13)).toBe("llo");
    expect(bytesFrom("abc", 10, 20)).toBe("");
  });
});
