// Every status of the Rust vocabulary (RUN_STATUSES, generated from `RunStatus::ALL`) has a
// badge: a class of its own that styles.css colours. A status added in Rust and regenerated
// without a rule here fails this test.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { badgeClass, badgeStatus, isRunStatus } from "../../src/components/badge";
import { RUN_STATUSES } from "../../src/generated/api";

/** The declarations of each plain selector of a stylesheet (rules inside @media included). */
function cssRules(css: string): Map<string, string[]> {
  const rules = new Map<string, string[]>();
  const noComments = css.replace(/\/\*[\s\S]*?\*\//g, "");
  for (const m of noComments.matchAll(/([^{}]+)\{([^{}]*)\}/g)) {
    for (const selector of m[1].split(",")) {
      const key = selector.trim();
      rules.set(key, [...(rules.get(key) ?? []), m[2].trim()]);
    }
  }
  return rules;
}

const css = readFileSync(new URL("../../src/styles.css", import.meta.url), "utf8");

describe("status badges", () => {
  it("the vocabulary is the Rust one, killed and unreadable included", () => {
    expect(RUN_STATUSES.length).toBeGreaterThanOrEqual(8);
    expect(RUN_STATUSES).toContain("killed");
    expect(RUN_STATUSES).toContain("unreadable");
    expect(new Set(RUN_STATUSES).size).toBe(RUN_STATUSES.length);
  });

  it("every status has a class of its own", () => {
    const classes = RUN_STATUSES.map(badgeClass);
    expect(new Set(classes).size).toBe(RUN_STATUSES.length);
  });

  it.each([...RUN_STATUSES])("styles.css colours the %s badge", (status) => {
    const declarations = cssRules(css).get(`.${badgeClass(status)}`) ?? [];
    expect(declarations.join(";"), `no rule .${badgeClass(status)} { background: … } in styles.css`).toMatch(
      /background\s*:/,
    );
  });

  it("a value outside the vocabulary shows as unknown", () => {
    expect(isRunStatus("paused")).toBe(false);
    expect(badgeStatus("paused")).toBe("unknown");
    for (const s of RUN_STATUSES) expect(badgeStatus(s)).toBe(s);
  });
});
