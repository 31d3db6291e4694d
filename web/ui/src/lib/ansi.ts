/**
 * ANSI escape sequences in log text: SGR colours (16, 256 and truecolour; bold, dim, italic,
 * underline, inverse) become styled segments; every other escape sequence (cursor moves, OSC
 * titles and links) is dropped. The parser keeps its style and any half-received escape across
 * `feed` calls, so text can arrive in chunks. It never produces markup: callers put each
 * segment's text into the DOM with textContent.
 */

export interface Style {
  fg: string | null;
  bg: string | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  inverse: boolean;
}

export interface Segment {
  text: string;
  style: Style;
}

export const PLAIN: Readonly<Style> = Object.freeze({
  fg: null,
  bg: null,
  bold: false,
  dim: false,
  italic: false,
  underline: false,
  inverse: false,
});

/** The 16 basic colours (xterm defaults), normal then bright. */
export const BASIC_COLOURS: readonly string[] = [
  "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
];

function hex2(n: number): string {
  return Math.max(0, Math.min(255, n | 0)).toString(16).padStart(2, "0");
}

function rgb(r: number, g: number, b: number): string {
  return `#${hex2(r)}${hex2(g)}${hex2(b)}`;
}

/** The colour of xterm's 256-colour palette entry `n`. */
export function colour256(n: number): string {
  if (n < 16) return BASIC_COLOURS[n] ?? BASIC_COLOURS[7]!;
  if (n < 232) {
    const i = n - 16;
    const level = (c: number) => (c === 0 ? 0 : 55 + c * 40);
    return rgb(level(Math.floor(i / 36)), level(Math.floor(i / 6) % 6), level(i % 6));
  }
  const grey = 8 + (n - 232) * 10;
  return rgb(grey, grey, grey);
}

/** Applies one SGR parameter list (the numbers of `ESC [ … m`) to `s`. */
export function applySgr(s: Style, params: readonly number[]): Style {
  const st: Style = { ...s };
  if (params.length === 0) return { ...PLAIN };
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === 0) Object.assign(st, PLAIN);
    else if (p === 1) st.bold = true;
    else if (p === 2) st.dim = true;
    else if (p === 3) st.italic = true;
    else if (p === 4) st.underline = true;
    else if (p === 7) st.inverse = true;
    else if (p === 22) {
      st.bold = false;
      st.dim = false;
    } else if (p === 23) st.italic = false;
    else if (p === 24) st.underline = false;
    else if (p === 27) st.inverse = false;
    else if (p >= 30 && p <= 37) st.fg = BASIC_COLOURS[p - 30]!;
    else if (p === 39) st.fg = null;
    else if (p >= 40 && p <= 47) st.bg = BASIC_COLOURS[p - 40]!;
    else if (p === 49) st.bg = null;
    else if (p >= 90 && p <= 97) st.fg = BASIC_COLOURS[p - 90 + 8]!;
    else if (p >= 100 && p <= 107) st.bg = BASIC_COLOURS[p - 100 + 8]!;
    else if (p === 38 || p === 48) {
      const mode = params[i + 1];
      let colour: string | null = null;
      if (mode === 5 && i + 2 < params.length) {
        colour = colour256(params[i + 2]!);
        i += 2;
      } else if (mode === 2 && i + 4 < params.length) {
        colour = rgb(params[i + 2]!, params[i + 3]!, params[i + 4]!);
        i += 4;
      } else {
        break; // malformed extended colour: ignore the rest of the sequence
      }
      if (p === 38) st.fg = colour;
      else st.bg = colour;
    }
  }
  return st;
}

function sameStyle(a: Style, b: Style): boolean {
  return (
    a.fg === b.fg &&
    a.bg === b.bg &&
    a.bold === b.bold &&
    a.dim === b.dim &&
    a.italic === b.italic &&
    a.underline === b.underline &&
    a.inverse === b.inverse
  );
}

const ESC = "\u001b";

/** A streaming parser: feed it text, get styled segments back. */
export class AnsiParser {
  private style: Style = { ...PLAIN };
  private pending = "";

  /** Parses `chunk`; an escape cut at the end of the chunk waits for the next call. */
  feed(chunk: string): Segment[] {
    const text = this.pending + chunk;
    this.pending = "";
    const out: Segment[] = [];
    let buf = "";
    const flush = () => {
      if (buf.length === 0) return;
      const prev = out[out.length - 1];
      if (prev && sameStyle(prev.style, this.style)) prev.text += buf;
      else out.push({ text: buf, style: this.style });
      buf = "";
    };
    let i = 0;
    while (i < text.length) {
      const c = text[i]!;
      if (c !== ESC && c !== "\u009b") {
        // Other C0 controls except tab and newline are not printable.
        const code = c.charCodeAt(0);
        if (code >= 0x20 || c === "\n" || c === "\t") buf += c;
        else if (c === "\r") {
          // a lone carriage return redraws the line: keep the text, drop the control
        }
        i++;
        continue;
      }
      const start = i;
      let j = c === ESC ? i + 1 : i;
      if (j >= text.length) {
        this.pending = text.slice(start);
        break;
      }
      const kind = c === ESC ? text[j]! : "[";
      if (kind === "[") {
        // CSI: parameters and intermediates, then a final byte in @..~
        j = c === ESC ? j + 1 : i + 1;
        while (j < text.length) {
          const code = text.charCodeAt(j);
          if (code >= 0x40 && code <= 0x7e) break;
          j++;
        }
        if (j >= text.length) {
          this.pending = text.slice(start);
          break;
        }
        const final = text[j]!;
        const body = text.slice(c === ESC ? start + 2 : start + 1, j);
        if (final === "m" && /^[0-9;:]*$/.test(body)) {
          flush();
          const params = body === "" ? [] : body.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
          this.style = applySgr(this.style, params);
        }
        i = j + 1;
      } else if (kind === "]") {
        // OSC: up to BEL or ST (ESC \)
        let end = -1;
        let endLen = 0;
        for (let k = j + 1; k < text.length; k++) {
          if (text[k] === "\u0007") {
            end = k;
            endLen = 1;
            break;
          }
          if (text[k] === ESC && text[k + 1] === "\\") {
            end = k;
            endLen = 2;
            break;
          }
        }
        if (end < 0) {
          if (text.length - start > 4096) {
            i = text.length; // runaway OSC: drop it
            continue;
          }
          this.pending = text.slice(start);
          break;
        }
        i = end + endLen;
      } else {
        // two-character escape (ESC 7, ESC =, …)
        i = j + 1;
      }
    }
    flush();
    return out;
  }

  /** The style in force after everything fed so far. */
  current(): Style {
    return this.style;
  }
}

/** Parses a whole text at once. */
export function parseAnsi(text: string): Segment[] {
  return new AnsiParser().feed(text);
}

/** Inline CSS declarations for a segment's style (colours come from the fixed palette). */
export function styleToCss(s: Style): Partial<Record<"color" | "backgroundColor" | "fontWeight" | "fontStyle" | "textDecoration" | "opacity", string>> {
  const css: Partial<Record<"color" | "backgroundColor" | "fontWeight" | "fontStyle" | "textDecoration" | "opacity", string>> = {};
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) {
    [fg, bg] = [bg ?? "var(--bg)", fg ?? "var(--fg)"];
  }
  if (fg) css.color = fg;
  if (bg) css.backgroundColor = bg;
  if (s.bold) css.fontWeight = "bold";
  if (s.italic) css.fontStyle = "italic";
  if (s.underline) css.textDecoration = "underline";
  if (s.dim) css.opacity = "0.7";
  return css;
}
