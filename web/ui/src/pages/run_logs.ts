/**
 * The Logs tab of a run: the last 64 KiB first, older text a page at a time, and live text
 * from the run's stream appended in byte order (duplicates and overlaps cut by byte offset,
 * a gap fetched before appending).
 */
import { api } from "../api";
import { LogView } from "../components/logview";

const PAGE = 65_536;

/** The part of `text` (which starts at byte `offset`) from byte `from` on. */
export function bytesFrom(text: string, offset: number, from: number): string {
  if (from <= offset) return text;
  const bytes = new TextEncoder().encode(text);
  return new TextDecoder().decode(bytes.subarray(Math.min(bytes.length, from - offset)));
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
    this.view = new LogView({ loadOlder: () => this.loadOlder() });
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
      if (ev.next <= this.end) return;
      if (ev.offset > this.end) {
        // missed bytes (a reconnect): fetch them first
        let at = this.end;
        while (at < ev.offset) {
          const page = await api.logs(this.runId, { offset: at, limit: Math.min(ev.offset - at, 1 << 20) });
          if (page.next <= at) break;
          this.appendText(page.text);
          at = page.next;
        }
        this.end = at;
      }
      this.appendText(bytesFrom(ev.text, ev.offset, this.end));
      this.end = ev.next;
    });
  }

  private appendText(text: string): void {
    this.view.append(text);
  }
}
