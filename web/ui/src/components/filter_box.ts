/**
 * The runs filter box: a text input for the filter language (`q=` of `GET /api/runs`) that
 * completes keys (summary, config, metric statistics, run fields) from a list under the box,
 * and shows a malformed expression's error under it with the offending part marked.
 * Keys: ↓/↑ move through the list, Enter or Tab take the marked key, Esc closes the list (or,
 * with no list, leaves the box); Enter with no list applies the filter at once.
 */
import { h, replace } from "../lib/dom";
import { applyCompletion, complete, type Completion, type KnownKeys } from "../lib/filter_complete";

/** Where a filter went wrong, as the API's `bad_filter` error says. */
export interface FilterError {
  message: string;
  position: number | null;
  length: number | null;
}

export interface FilterBox {
  el: HTMLElement;
  input: HTMLInputElement;
  setKeys(keys: KnownKeys): void;
  setValue(q: string): void;
  showError(err: FilterError | null): void;
}

export interface FilterBoxOptions {
  value: string;
  placeholder: string;
  /** The trimmed filter, after typing pauses (or at once on Enter). */
  onChange: (q: string) => void;
  delayMs?: number;
}

export function filterBox(o: FilterBoxOptions): FilterBox {
  let keys: KnownKeys = { summary: [], config: [], metrics: [] };
  let current: Completion | null = null;
  let active = -1;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sent = o.value.trim();

  const input = h("input", {
    type: "search",
    placeholder: o.placeholder,
    value: o.value,
    class: "filter",
    spellcheck: false,
    autocomplete: "off",
    attrs: { "aria-label": "Filter runs", "aria-autocomplete": "list", role: "combobox", "aria-expanded": "false" },
  });
  const list = h("ul", { class: "filter-complete", attrs: { role: "listbox" }, hidden: true });
  const error = h("div", { class: "filter-error", hidden: true, attrs: { role: "alert" } });
  const el = h("div", { class: "filter-box" }, input, list, error);

  const send = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const q = input.value.trim();
    if (q === sent) return;
    sent = q;
    o.onChange(q);
  };
  const schedule = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(send, o.delayMs ?? 300);
  };

  const close = () => {
    current = null;
    active = -1;
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    replace(list);
  };
  const render = () => {
    if (!current) return close();
    replace(
      list,
      ...current.items.map((item, i) => {
        const li = h("li", { class: `filter-item${i === active ? " active" : ""}`, attrs: { role: "option", "aria-selected": String(i === active) } }, item);
        // mousedown, not click: the input keeps its focus.
        li.addEventListener("mousedown", (ev) => {
          ev.preventDefault();
          take(item);
        });
        return li;
      }),
    );
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  };
  const suggest = () => {
    const cursor = input.selectionStart ?? input.value.length;
    current = complete(input.value, cursor, keys);
    active = -1;
    render();
  };
  const take = (item: string) => {
    if (!current) return;
    const next = applyCompletion(input.value, current, item);
    input.value = next.text;
    input.setSelectionRange(next.cursor, next.cursor);
    close();
    // `has:` and `tag:` want more; a key wants an operator: either way, keep typing.
    schedule();
  };

  input.addEventListener("input", () => {
    suggest();
    schedule();
  });
  input.addEventListener("blur", () => close());
  input.addEventListener("keydown", (ev) => {
    const open = current !== null && !list.hidden;
    if (open && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      const n = current!.items.length;
      active = ev.key === "ArrowDown" ? (active + 1) % n : (active - 1 + n) % n;
      render();
    } else if (open && (ev.key === "Tab" || (ev.key === "Enter" && active >= 0))) {
      ev.preventDefault();
      take(current!.items[Math.max(0, active)]!);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      close();
      send();
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      if (open) close();
      else input.blur();
    }
  });
  // The search input's own clear button.
  input.addEventListener("search", () => {
    if (input.value === "") send();
  });

  const showError = (err: FilterError | null) => {
    if (!err) {
      error.hidden = true;
      replace(error);
      input.removeAttribute("aria-invalid");
      return;
    }
    input.setAttribute("aria-invalid", "true");
    const text = sent;
    const parts: (Node | string)[] = [h("div", { class: "filter-error-msg" }, err.message)];
    if (err.position !== null && err.position <= text.length) {
      // Positions count characters (code points), as the API does.
      const chars = Array.from(text);
      const at = err.position;
      const len = Math.max(1, err.length ?? 1);
      const bad = chars.slice(at, at + len).join("");
      parts.push(
        h(
          "code",
          { class: "filter-error-expr" },
          chars.slice(0, at).join(""),
          h("mark", { class: "filter-error-at", title: `position ${at}` }, bad === "" ? " " : bad),
          chars.slice(at + len).join(""),
        ),
      );
    }
    replace(error, ...parts);
    error.hidden = false;
  };

  return {
    el,
    input,
    setKeys: (k) => (keys = k),
    setValue: (q) => {
      input.value = q;
      sent = q.trim();
      close();
    },
    showError,
  };
}
