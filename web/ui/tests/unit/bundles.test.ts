import { describe, expect, it } from "vitest";
import { attachmentName } from "../../src/api";

describe("attachmentName", () => {
  it("reads the file name of an attachment", () => {
    expect(attachmentName('attachment; filename="runicorn-2-runs-2026-12-05.rbundle"', "x")).toBe("runicorn-2-runs-2026-12-05.rbundle");
  });
  it("falls back when the header is missing or has no name", () => {
    expect(attachmentName(null, "runicorn-2-runs.rbundle")).toBe("runicorn-2-runs.rbundle");
    expect(attachmentName("attachment", "fallback.rbundle")).toBe("fallback.rbundle");
  });
});
