import { describe, expect, it } from "vitest";
import { sizes, storedOnServer } from "../../src/pages/artifacts";

const MiB = 1024 * 1024;

describe("bytes saved by dedup", () => {
  it("uses the agent's chunk-level measure when it sent one", () => {
    const a = { total_bytes: 15 * MiB, stored_bytes: 15 * MiB, saved_bytes: 0, server_bytes: 8 * MiB, server_saved_bytes: 7 * MiB };
    expect(storedOnServer(a)).toEqual({ stored: 8 * MiB, saved: 7 * MiB, chunkLevel: true });
    expect(sizes(a)).toBe("15 MiB in all · 8.0 MiB on the server (chunk-level dedup) · 7.0 MiB saved by dedup (47 %)");
  });

  it("falls back to distinct whole files for older agents", () => {
    const a = { total_bytes: 3000, stored_bytes: 1000, saved_bytes: 2000, server_bytes: null, server_saved_bytes: null };
    expect(storedOnServer(a)).toEqual({ stored: 1000, saved: 2000, chunkLevel: false });
    expect(sizes(a)).toMatch(/1000 B stored \(each distinct file once\) · 2.0 KiB saved by dedup \(67 %\)$/);
  });

  it("compares an overall saving with the artifacts that were measured, and says per artifact", () => {
    const list = { total_bytes: 10 * MiB, stored_bytes: 10 * MiB, saved_bytes: 0, server_bytes: 2 * MiB, server_saved_bytes: 2 * MiB, server_measured_bytes: 4 * MiB };
    expect(sizes(list, true)).toBe("10 MiB in all · 2.0 MiB on the server (chunk-level dedup, per artifact) · 2.0 MiB saved by dedup (50 %)");
  });
});
