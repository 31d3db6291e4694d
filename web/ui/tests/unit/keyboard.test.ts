import { describe, expect, it } from "vitest";
import { matchShortcut, type Shortcut } from "../../src/lib/keyboard";

const noop = () => {};
const list: Shortcut[] = [
  { keys: ["j"], label: "j", description: "next", run: noop },
  { keys: ["x", " "], label: "x", description: "toggle", run: noop },
];
const ev = (key: string, extra: Partial<KeyboardEvent> = {}) =>
  ({ key, ctrlKey: false, metaKey: false, altKey: false, target: null, ...extra }) as KeyboardEvent;

describe("keyboard", () => {
  it("matches keys of the shortcuts in force", () => {
    expect(matchShortcut(ev("j"), list)?.description).toBe("next");
    expect(matchShortcut(ev(" "), list)?.description).toBe("toggle");
    expect(matchShortcut(ev("q"), list)).toBeNull();
  });

  it("leaves space to a focused checkbox, which it toggles", () => {
    const input = (type: string) => ({ tagName: "INPUT", type, isContentEditable: false, closest: () => null }) as unknown as EventTarget;
    expect(matchShortcut(ev(" ", { target: input("checkbox") }), list)).toBeNull();
    expect(matchShortcut(ev(" ", { target: input("radio") }), list)).toBeNull();
    // Its other keys still reach the page (a checkbox takes no text).
    expect(matchShortcut(ev("x", { target: input("checkbox") }), list)?.description).toBe("toggle");
  });

  it("never fires with a modifier held", () => {
    expect(matchShortcut(ev("j", { ctrlKey: true }), list)).toBeNull();
    expect(matchShortcut(ev("j", { metaKey: true }), list)).toBeNull();
    expect(matchShortcut(ev("j", { altKey: true }), list)).toBeNull();
  });

  it("lets the later registration win", () => {
    const later: Shortcut = { keys: ["j"], label: "j", description: "later", run: noop };
    expect(matchShortcut(ev("j"), [...list, later])?.description).toBe("later");
  });
});
