/**
 * The log viewer: ANSI-coloured text rendered as DOM spans (text nodes only), a search box that
 * highlights matches, a "follow" toggle that keeps the view at the bottom while text arrives,
 * and a button that loads older text. The page owns the byte offsets; this component owns the
 * lines on screen.
 */
import { AnsiParser, parseAnsi, styleToCss, type Segment } from "../lib/ansi";
import { debounce, h } from "../lib/dom";

/** Lines kept on screen; older ones are dropped while following (they can be loaded again). */
const MAX_LINES = 50_000;

type Line = Segment[];

/** Splits segments at newlines into lines; the last line is open (no newline yet). */
export function splitLines(segs: Segment[]): Line[] {
  const lines: Line[] = [[]];
  for (const s of segs) {
    const parts = s.text.split("\n");
    parts.forEach((p, i) => {
      if (i > 0) lines.push([]);
      if (p.length > 0) lines[lines.length - 1]!.push({ text: p, style: s.style });
    });
  }
  return lines;
}

/** Match ranges of `query` (case-insensitive) in `text`. */
export function findMatches(text: string, query: string): [number, number][] {
  if (!query) return [];
  const out: [number, number][] = [];
  const hay = text.toLowerCase();
  const needle = query.toLowerCase();
  let i = hay.indexOf(needle);
  while (i >= 0) {
    out.push([i, i + needle.length]);
    i = hay.indexOf(needle, i + needle.length);
  }
  return out;
}

export interface LogViewOptions {
  /** Loads older text; resolves to whether even older text remains. */
  loadOlder: () => Promise<boolean>;
  /** Where the whole log can be downloaded, byte for byte (a "Download" link when set). */
  downloadUrl?: string;
}

export class LogView {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private readonly search: HTMLInputElement;
  private readonly follow: HTMLInputElement;
  private readonly count: HTMLElement;
  private readonly olderBtn: HTMLButtonElement;
  private lines: Line[] = [[]];
  private parser = new AnsiParser();
  private query = "";
  private programmaticScroll = false;

  constructor(private readonly opts: LogViewOptions) {
    this.search = h("input", {
      type: "search",
      placeholder: "Search logs",
      class: "log-search",
      attrs: { "aria-label": "Search logs" },
    });
    this.count = h("span", { class: "muted log-count" });
    this.follow = h("input", { type: "checkbox", checked: true, class: "log-follow" });
    this.olderBtn = h("button", { type: "button", class: "btn log-older" }, "Load older");
    this.olderBtn.hidden = true;
    this.body = h("div", { class: "log-body", attrs: { role: "log", "aria-live": "off", tabindex: "0" } });
    this.el = h(
      "div",
      { class: "logview" },
      h(
        "div",
        { class: "toolbar" },
        this.search,
        this.count,
        h("label", { class: "check" }, this.follow, " Follow"),
        this.olderBtn,
        opts.downloadUrl
          ? h(
              "a",
              {
                class: "btn log-download",
                href: opts.downloadUrl,
                title: "The log exactly as the hub holds it",
                style: { textDecoration: "none" },
                attrs: { download: "" },
              },
              "Download",
            )
          : null,
      ),
      this.body,
    );
    this.search.addEventListener(
      "input",
      debounce(() => {
        this.query = this.search.value;
        this.renderAll();
        this.scrollToFirstMatch();
      }, 150),
    );
    this.follow.addEventListener("change", () => {
      if (this.follow.checked) this.scrollToBottom();
    });
    this.body.addEventListener("scroll", () => {
      if (this.programmaticScroll) {
        this.programmaticScroll = false;
        return;
      }
      const atBottom = this.body.scrollHeight - this.body.scrollTop - this.body.clientHeight < 8;
      if (this.follow.checked !== atBottom) this.follow.checked = atBottom;
    });
    this.olderBtn.addEventListener("click", async () => {
      this.olderBtn.disabled = true;
      try {
        this.olderBtn.hidden = !(await this.opts.loadOlder());
      } finally {
        this.olderBtn.disabled = false;
      }
    });
  }

  /** Whether the view follows new text. */
  get following(): boolean {
    return this.follow.checked;
  }

  /** Shows or hides the "Load older" button. */
  setHasOlder(has: boolean): void {
    this.olderBtn.hidden = !has;
  }

  /** Appends text that continues the log (it may end mid-line or mid-escape). */
  append(text: string): void {
    if (!text) return;
    const newLines = splitLines(this.parser.feed(text));
    const firstChanged = this.lines.length - 1;
    this.lines[firstChanged]!.push(...newLines[0]!);
    for (let i = 1; i < newLines.length; i++) this.lines.push(newLines[i]!);
    let dropped = 0;
    if (this.lines.length > MAX_LINES) {
      dropped = this.lines.length - MAX_LINES;
      this.lines.splice(0, dropped);
      this.setHasOlder(true);
    }
    // Re-render only the line that grew and the new ones.
    for (let i = 0; i < dropped && this.body.firstChild; i++) this.body.firstChild.remove();
    const start = Math.max(0, firstChanged - dropped);
    while (this.body.childNodes.length > start) this.body.lastChild!.remove();
    for (let i = start; i < this.lines.length; i++) this.body.appendChild(this.renderLine(this.lines[i]!));
    this.updateCount();
    this.body.dataset.lines = String(this.lineCount());
    if (this.follow.checked) this.scrollToBottom();
  }

  /** Puts older text (ending where the shown text starts) above the shown text. */
  prepend(text: string): void {
    if (!text) return;
    const older = splitLines(parseAnsi(text));
    if (older[older.length - 1]!.length === 0) older.pop();
    else {
      // the older page ended mid-line: it continues into our first line
      const last = older.pop()!;
      this.lines[0] = [...last, ...this.lines[0]!];
      this.body.firstChild?.replaceWith(this.renderLine(this.lines[0]!));
    }
    const prevHeight = this.body.scrollHeight;
    const prevTop = this.body.scrollTop;
    this.lines = [...older, ...this.lines];
    const frag = document.createDocumentFragment();
    for (const l of older) frag.appendChild(this.renderLine(l));
    this.body.insertBefore(frag, this.body.firstChild);
    this.programmaticScroll = true;
    this.body.scrollTop = prevTop + (this.body.scrollHeight - prevHeight);
    this.updateCount();
    this.body.dataset.lines = String(this.lineCount());
  }

  /** Shows a message in place of the log (no text yet, failed to load). */
  showMessage(text: string): void {
    this.body.replaceChildren(h("div", { class: "state state-empty" }, text));
  }

  /** Complete lines plus the open one when it has text. */
  lineCount(): number {
    const last = this.lines[this.lines.length - 1]!;
    return this.lines.length - (last.length === 0 ? 1 : 0);
  }

  private renderLine(line: Line): HTMLElement {
    const div = document.createElement("div");
    div.className = "log-line";
    const text = line.map((s) => s.text).join("");
    const matches = findMatches(text, this.query);
    let pos = 0;
    let m = 0;
    for (const seg of line) {
      const segStart = pos;
      const segEnd = pos + seg.text.length;
      const span = document.createElement("span");
      Object.assign(span.style, styleToCss(seg.style));
      let cur = segStart;
      while (m < matches.length && matches[m]![0] < segEnd) {
        const [ms, me] = matches[m]!;
        const a = Math.max(ms, cur);
        const b = Math.min(me, segEnd);
        if (a > cur) span.appendChild(document.createTextNode(seg.text.slice(cur - segStart, a - segStart)));
        if (b > a) {
          const mark = document.createElement("mark");
          mark.textContent = seg.text.slice(a - segStart, b - segStart);
          span.appendChild(mark);
        }
        cur = Math.max(cur, b);
        if (me <= segEnd) m++;
        else break;
      }
      if (cur < segEnd) span.appendChild(document.createTextNode(seg.text.slice(cur - segStart)));
      div.appendChild(span);
      pos = segEnd;
    }
    if (line.length === 0) div.appendChild(document.createTextNode("\u200b"));
    return div;
  }

  private renderAll(): void {
    const frag = document.createDocumentFragment();
    for (const l of this.lines) frag.appendChild(this.renderLine(l));
    this.body.replaceChildren(frag);
    this.updateCount();
  }

  private updateCount(): void {
    if (!this.query) {
      this.count.textContent = "";
      return;
    }
    const n = this.body.querySelectorAll("mark").length;
    this.count.textContent = n === 1 ? "1 match" : `${n} matches`;
  }

  private scrollToFirstMatch(): void {
    const mark = this.body.querySelector("mark");
    if (mark) {
      this.follow.checked = false;
      mark.scrollIntoView({ block: "center" });
    }
  }

  private scrollToBottom(): void {
    this.programmaticScroll = true;
    this.body.scrollTop = this.body.scrollHeight;
  }
}
