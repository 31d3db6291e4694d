import { describe, expect, it } from "vitest";
import { AnsiParser, colour256, parseAnsi, PLAIN, styleToCss } from "../../src/lib/ansi";

describe("ansi", () => {
  it("passes plain text through", () => {
    expect(parseAnsi("hello\nworld")).toEqual([{ text: "hello\nworld", style: PLAIN }]);
  });
  it("parses the 16 basic colours and reset", () => {
    const segs = parseAnsi("a\x1b[31mred\x1b[0mb\x1b[92mgreen");
    expect(segs.map((s) => s.text)).toEqual(["a", "red", "b", "green"]);
    expect(segs[1]!.style.fg).toBe("#cd3131");
    expect(segs[2]!.style.fg).toBeNull();
    expect(segs[3]!.style.fg).toBe("#23d18b");
  });
  it("parses bold, 256 and truecolour, foreground and background", () => {
    const [s1, s2, s3] = parseAnsi("\x1b[1;38;5;196mA\x1b[22;48;2;10;20;30mB\x1b[38;5;244mC");
    expect(s1!.style.bold).toBe(true);
    expect(s1!.style.fg).toBe(colour256(196));
    expect(colour256(196)).toBe("#ff0000");
    expect(s2!.style.bold).toBe(false);
    expect(s2!.style.bg).toBe("#0a141e");
    expect(s3!.style.fg).toBe("#808080");
  });
  it("treats an empty SGR as reset and drops other escapes", () => {
    const segs = parseAnsi("\x1b[31mx\x1b[my\x1b[2K\x1b]0;title\x07z\x1b7");
    expect(segs.map((s) => s.text).join("")).toBe("xyz");
    expect(segs[0]!.style.fg).toBe("#cd3131");
    expect(segs[1]!.style).toEqual(PLAIN);
  });
  it("keeps style and half-received escapes across chunks", () => {
    const p = new AnsiParser();
    const a = p.feed("one \x1b[3");
    const b = p.feed("4mtwo");
    const c = p.feed(" three\x1b[0m");
    expect(a.map((s) => s.text)).toEqual(["one "]);
    expect(b).toEqual([{ text: "two", style: { ...PLAIN, fg: "#2472c8" } }]);
    expect(c[0]!.style.fg).toBe("#2472c8");
    expect(p.current()).toEqual(PLAIN);
  });
  it("never turns markup into anything but text", () => {
    const segs = parseAnsi("<script>alert(1)</script>");
    expect(segs[0]!.text).toBe("<script>alert(1)</script>");
  });
  it("drops control characters except tab and newline", () => {
    expect(parseAnsi("a\x07b\tc\rd\x00")[0]!.text).toBe("ab\tcd");
  });
  it("writes css for a style, inverse swapping colours", () => {
    expect(styleToCss({ ...PLAIN, fg: "#ff0000", bold: true, underline: true })).toEqual({
      color: "#ff0000",
      fontWeight: "bold",
      textDecoration: "underline",
    });
    expect(styleToCss({ ...PLAIN, fg: "#ff0000", inverse: true })).toEqual({
      color: "var(--bg)",
      backgroundColor: "#ff0000",
    });
  });
});
