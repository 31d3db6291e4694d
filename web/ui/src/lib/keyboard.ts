/**
 * Keyboard shortcuts of the dashboard: pages register theirs while they are shown; one window
 * listener dispatches them, never while the user types in a field or holds Ctrl/Alt/Meta; `?`
 * opens the list of the shortcuts in force and `Esc` closes it.
 */
import { h } from "./dom";

export interface Shortcut {
  /** `KeyboardEvent.key` values that trigger it (`"j"`, `"Enter"`, `" "`). */
  keys: string[];
  /** How the list shows the keys (`"j / k"`). */
  label: string;
  description: string;
  run: (ev: KeyboardEvent) => void;
}

const active: Shortcut[][] = [];
let help: HTMLElement | null = null;

/** True when a key press belongs to what the user is typing (a field, a list, editable text). */
export function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || typeof el.closest !== "function") return false;
  if (el.isContentEditable) return true;
  const field = el.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']");
  if (!field) return false;
  // Checkboxes and buttons take no text: shortcuts still work when they have the focus.
  return !(field instanceof HTMLInputElement && (field.type === "checkbox" || field.type === "radio" || field.type === "button"));
}

/** True when Enter or space on `target` already does something (a link, a button, a sortable
 * header): those keys are then left to it. */
function activates(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || typeof el.closest !== "function") return false;
  return el.closest("a[href], button, summary, [tabindex]:not([tabindex='-1'])") !== null && el !== document.body;
}

/** True when space on `target` toggles it (a focused checkbox or radio button, such as the
 * runs page's "metadata only"): space is then left to it. */
function togglesOnSpace(target: EventTarget | null): boolean {
  const el = target as HTMLInputElement | null;
  return el?.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio");
}

/** The shortcut a key press means, or null (typing, a modifier held, no such key). */
export function matchShortcut(
  ev: Pick<KeyboardEvent, "key" | "ctrlKey" | "metaKey" | "altKey" | "target">,
  shortcuts: readonly Shortcut[],
): Shortcut | null {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || isTyping(ev.target)) return null;
  if ((ev.key === "Enter" || ev.key === " ") && activates(ev.target)) return null;
  if (ev.key === " " && togglesOnSpace(ev.target)) return null;
  // Later registrations (the page shown) win over earlier ones.
  for (let i = shortcuts.length - 1; i >= 0; i--) if (shortcuts[i]!.keys.includes(ev.key)) return shortcuts[i]!;
  return null;
}

/** Makes `shortcuts` active until the returned function is called (a page's destroy). */
export function registerShortcuts(shortcuts: Shortcut[]): () => void {
  active.push(shortcuts);
  return () => {
    const i = active.indexOf(shortcuts);
    if (i >= 0) active.splice(i, 1);
  };
}

/** The shortcuts in force, the list's own first. */
export function currentShortcuts(): Shortcut[] {
  return [
    { keys: ["?"], label: "?", description: "Show this list", run: () => showHelp() },
    { keys: ["Escape"], label: "Esc", description: "Close this list", run: () => hideHelp() },
    ...active.flat(),
  ];
}

/** Closes the shortcut list; true if it was open. */
export function hideHelp(): boolean {
  if (!help) return false;
  help.remove();
  help = null;
  return true;
}

/** Opens the list of shortcuts in force. */
export function showHelp(): void {
  hideHelp();
  const rows = currentShortcuts().map((s) => h("tr", {}, h("td", {}, h("kbd", {}, s.label)), h("td", {}, s.description)));
  const close = h("button", { type: "button", class: "btn", attrs: { "aria-label": "Close" } }, "Close");
  close.addEventListener("click", () => hideHelp());
  const box = h(
    "div",
    { class: "shortcut-help", attrs: { role: "dialog", "aria-modal": "true", "aria-label": "Keyboard shortcuts" } },
    h("div", { class: "shortcut-card" }, h("h2", {}, "Keyboard shortcuts"), h("table", { class: "shortcut-table" }, h("tbody", {}, ...rows)), close),
  );
  box.addEventListener("click", (ev) => {
    if (ev.target === box) hideHelp();
  });
  document.body.append(box);
  help = box;
  close.focus();
}

/** Installs the one window listener (main.ts, once). */
export function installKeyboard(): void {
  window.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented) return;
    if (ev.key === "Escape" && hideHelp()) {
      ev.preventDefault();
      return;
    }
    if (help) return;
    const s = matchShortcut(ev, currentShortcuts());
    if (!s) return;
    ev.preventDefault();
    s.run(ev);
  });
}
