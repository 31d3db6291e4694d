/** What every page gives the router: its element and a way to stop its timers and streams. */
export interface Page {
  el: HTMLElement;
  destroy(): void;
}

/** Runs `fn` when the store changed (the `/api/events` stream, dispatched by main.ts). */
export function onStoreChanged(fn: () => void): () => void {
  const handler = () => fn();
  window.addEventListener("runicorn:changed", handler);
  return () => window.removeEventListener("runicorn:changed", handler);
}
