import { describe, expect, it } from "vitest";
import {
  flatten,
  formatAgo,
  formatBytes,
  formatDuration,
  formatNumber,
  formatValue,
  getPath,
} from "../../src/lib/format";

describe("format", () => {
  it("numbers", () => {
    expect(formatNumber(null)).toBe("–");
    expect(formatNumber(1234567)).toBe("1,234,567");
    expect(formatNumber(0.123456)).toBe("0.1235");
    expect(formatNumber(0.00001234)).toBe("1.234e-5");
    expect(formatNumber(NaN)).toBe("NaN");
    expect(formatNumber(-Infinity)).toBe("-∞");
  });
  it("values", () => {
    expect(formatValue("sgd")).toBe("sgd");
    expect(formatValue(true)).toBe("true");
    expect(formatValue([1, 2])).toBe("[1,2]");
    expect(formatValue(undefined)).toBe("–");
  });
  it("durations", () => {
    expect(formatDuration(3.25)).toBe("3.3s");
    expect(formatDuration(42)).toBe("42s");
    expect(formatDuration(125)).toBe("2m 05s");
    expect(formatDuration(3725)).toBe("1h 02m");
    expect(formatDuration(90000)).toBe("1d 01h");
    expect(formatDuration(null)).toBe("–");
    expect(formatDuration(-1)).toBe("–");
  });
  it("ago", () => {
    expect(formatAgo(100, 102)).toBe("just now");
    expect(formatAgo(100, 400)).toBe("5 min ago");
    expect(formatAgo(null)).toBe("never");
  });
  it("bytes", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(50 * 1024 * 1024)).toBe("50 MiB");
  });
  it("flatten and getPath", () => {
    const cfg = { lr: 0.1, optim: { name: "sgd", betas: [0.9, 0.99] }, empty: {} };
    expect(flatten(cfg)).toEqual({ lr: 0.1, "optim.name": "sgd", "optim.betas": [0.9, 0.99], empty: {} });
    expect(getPath(cfg, "optim.name")).toBe("sgd");
    expect(getPath({ "a.b": 1 }, "a.b")).toBe(1);
    expect(getPath(cfg, "nope.x")).toBeUndefined();
    expect(getPath(null, "x")).toBeUndefined();
  });
});
