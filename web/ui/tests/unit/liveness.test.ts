// The liveness badge's text and the live dot's class for each remote state (the badge element
// itself is checked in Chromium: tests/browser/liveness.test.mjs).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { liveDotClass, livenessText, runDurationSoFar, STATE_LABELS, stateText } from "../../src/lib/liveness";
import type { RemoteState } from "../../src/api";

const run = (remote_state: RemoteState, remote_heard_at: number | null = 1000, status = "running") =>
  ({ remote: "gpu1", remote_state, remote_heard_at, status }) as const;

describe("liveness", () => {
  it("gives a green dot only to a running run of a live remote", () => {
    expect(liveDotClass(run("live"))).toContain(" on");
    expect(liveDotClass(run("live", 1000, "finished"))).not.toContain(" on");
    // A stalled run is alive (its writer makes no steps): still green.
    expect(liveDotClass(run("live", 1000, "stalled"))).toContain(" on");
    for (const s of ["offline", "paused", "not_followed", "imported", "removed"] as const) {
      expect(liveDotClass(run(s))).not.toContain(" on");
      expect(liveDotClass(run(s))).toContain(`live-dot-${s}`);
    }
  });

  it("says when the hub last heard from a remote that is not live", () => {
    expect(livenessText(run("offline"), 1120)).toBe("offline · last heard 2 min ago");
    expect(livenessText(run("paused"), 1010)).toBe("paused · last heard 10 s ago");
    expect(livenessText(run("not_followed", null), 1120)).toBe("not followed · last heard never");
    expect(livenessText(run("removed"), 1120)).toBe("remote removed");
  });

  it("dates an imported remote's runs by their newest bundle, without ageing or alarm", () => {
    // Noon local time on 1 Dec 2026: the same date in every time zone's rendering.
    const made = new Date(2026, 11, 1, 12, 0, 0).getTime() / 1000;
    expect(livenessText(run("imported", made), made + 86_400 * 30)).toBe("imported · bundle of 2026-12-01");
    expect(stateText("imported", made, made + 5)).toBe("imported · bundle of 2026-12-01");
    expect(stateText("imported", null)).toBe("imported · from a bundle");
    expect(stateText("offline", 1000, 1120)).toBe("offline · last heard 2 min ago");
    // Its badge is neutral (the muted colour), never the warning colour of `offline`.
    const css = readFileSync(new URL("../../src/styles.css", import.meta.url), "utf8");
    const rule = /\.liveness-imported\s*\{([^}]*)\}/.exec(css);
    expect(rule?.[1]).toContain("var(--muted)");
    expect(rule?.[1]).not.toContain("--danger");
  });

  it("labels every state", () => {
    const states: RemoteState[] = ["live", "offline", "paused", "not_followed", "imported", "removed"];
    for (const s of states) expect(STATE_LABELS[s]).toBeTruthy();
  });

  it("gives a run that ended its duration whatever its status", () => {
    const base = { created_at: 100, ended_at: null, remote_state: "live", remote_heard_at: 150 } as const;
    expect(runDurationSoFar({ ...base, ended_at: 160, status: "finished" }, 500)).toBe(60);
    // Crashed without an end time: until its last heartbeat.
    expect(runDurationSoFar({ ...base, status: "crashed", status_record: { heartbeat_at: 130 } }, 500)).toBe(30);
    expect(runDurationSoFar({ ...base, status: "killed", status_record: null }, 500)).toBeNull();
    // In the table (no status_record): the listing's heartbeat_at.
    expect(runDurationSoFar({ ...base, status: "crashed", heartbeat_at: 145 }, 500)).toBe(45);
    expect(runDurationSoFar({ ...base, status: "crashed", heartbeat_at: null }, 500)).toBeNull();
    // Running: until now while live, until last heard otherwise.
    expect(runDurationSoFar({ ...base, status: "running" }, 500)).toBe(400);
    expect(runDurationSoFar({ ...base, status: "running", remote_state: "offline" }, 500)).toBe(50);
    expect(runDurationSoFar({ ...base, status: "stalled" }, 500)).toBe(400);
  });
});
