/**
 * Small DOM helpers. Text always goes in through text nodes (`textContent` /
 * `createTextNode`); nothing here accepts HTML, so data from runs can never become markup.
 */

type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  title?: string;
  style?: Partial<CSSStyleDeclaration>;
  dataset?: Record<string, string>;
  attrs?: Record<string, string>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[K]) => void }>;
}

/** Creates an element with properties and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props & Partial<Omit<HTMLElementTagNameMap[K], keyof Props | "innerHTML" | "outerHTML" | "style" | "dataset">> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  const { class: cls, title, style, dataset, attrs, on, ...rest } = props;
  if (cls) el.className = cls;
  if (title !== undefined) el.title = title;
  if (style) Object.assign(el.style, style);
  if (dataset) for (const [k, v] of Object.entries(dataset)) el.dataset[k] = v;
  if (attrs) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (on) {
    for (const [k, fn] of Object.entries(on)) el.addEventListener(k, fn as EventListener);
  }
  for (const [k, v] of Object.entries(rest)) {
    if (k === "innerHTML" || k === "outerHTML") continue;
    (el as unknown as Record<string, unknown>)[k] = v;
  }
  append(el, ...children);
  return el;
}

/** Appends children, strings as text nodes. */
export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces all children of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A message block for empty and error states. */
export function message(kind: "empty" | "error" | "loading", ...children: Child[]): HTMLElement {
  return h("div", { class: `state state-${kind}`, attrs: { role: kind === "error" ? "alert" : "status" } }, ...children);
}

/** Inline code (for commands in messages). */
export function code(text: string): HTMLElement {
  return h("code", {}, text);
}

/** Calls `fn` once `ms` after the last call. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args: A) => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** localStorage that never throws (private mode, quota). */
export const store = {
  get(key: string): string | null {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      localStorage.setItem(key, value);
    } catch {
      /* storage unavailable: the choice lasts for this page only */
    }
  },
};
