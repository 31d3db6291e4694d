/**
 * The Logs tab of a run: the last 64 KiB first, older text a page at a time, and live text
 * from the run's stream appended in byte order. Every position is a byte offset of the run's
 * `logs.txt` given by the server (`offset`/`next`); the text is the server's lossy decoding of
 * those bytes, so its JavaScript length says nothing about them and is never used as an offset.
 * An event that continues the shown bytes exactly is appended; one that overlaps them or leaves
 * a gap is replaced by pages read from the shown end.
 */
import { api } from "../api";
import { LogView } from "../components/logview";

const PAGE = 65_536;

/** What to do with a live log event, given the byte offset where the shown log ends. */
export type LiveStep = { kind: "skip" } | { kind: "append" } | { kind: "fetch"; from: number; to: number };

export function liveStep(end: number, ev: { offset: number; next: number }): LiveStep {
  if (ev.next <= end) return { kind: "skip" };
  if (ev.offset === end) return { kind: "append" };
  // Missed bytes (a reconnect) or an overlap: read the pages from the shown end instead.
  return { kind: "fetch", from: end, to: ev.next };
}

export class RunLogs {
  readonly el: HTMLElement;
  private readonly view: LogView;
  private loaded = false;
  private ready = false;
  /** Bytes shown: first..end of the run's logs.txt. */
  private first = 0;
  private end = 0;
  private storeStart = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly runId: number) {
    this.view = new LogView({
      loadOlder: () => this.loadOlder(),
      downloadUrl: `/api/runs/${runId}/logs?format=raw`,
    });
    this.el = this.view.el;
  }

  show(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.queue = this.queue.then(() => this.loadTail());
  }

  private async loadTail(): Promise<void> {
    try {
      const page = await api.logs(this.runId, { limit: PAGE });
      this.storeStart = page.start;
      this.first = page.offset;
      this.end = page.next;
      if (page.text.length === 0) this.view.showMessage("No log output yet.");
      else this.view.append(page.text);
      this.view.setHasOlder(page.offset > page.start);
      this.ready = true;
    } catch (e) {
      this.view.showMessage(`Could not load the log: ${(e as Error).message}`);
    }
  }

  private async loadOlder(): Promise<boolean> {
    const from = Math.max(this.storeStart, this.first - PAGE);
    let text = "";
    let at = from;
    let realStart: number | null = null;
    while (at < this.first) {
      const page = await api.logs(this.runId, { offset: at, limit: this.first - at });
      if (realStart === null) realStart = page.offset;
      this.storeStart = page.start;
      if (page.next <= at) break;
      text += page.text;
      at = page.next;
    }
    this.view.prepend(text);
    this.first = realStart ?? from;
    return this.first > this.storeStart;
  }

  /** Live text from the run's stream. */
  live(ev: { offset: number; next: number; text: string }): void {
    if (!this.loaded) return;
    this.queue = this.queue.then(async () => {
      if (!this.ready) return;
      const step = liveStep(this.end, ev);
      if (step.kind === "append") {
        this.appendText(ev.text);
        this.end = ev.next;
      } else if (step.kind === "fetch") {
        let at = step.from;
        while (at < step.to) {
          const page = await api.logs(this.runId, { offset: at, limit: Math.min(step.to - at, 1 << 20) });
          if (page.next <= at) break;
          this.appendText(page.text);
          at = page.next;
        }
        this.end = at;
      }
    });
  }

  private appendText(text: string): void {
    this.view.append(text);
  }
}
