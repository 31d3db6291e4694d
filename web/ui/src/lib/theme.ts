/**
 * Light and dark themes: the system's preference unless the user chose one with the toggle
 * (kept in localStorage). Charts read their colours from the CSS variables of the theme.
 */
import { store } from "./dom";

export type Theme = "light" | "dark";
const KEY = "runicorn.theme";

/** The theme in force now. */
export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
}

function systemTheme(): Theme {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function apply(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
  window.dispatchEvent(new CustomEvent("runicorn:theme", { detail: theme }));
}

/** Applies the stored or system theme, and follows the system while no choice is stored. */
export function initTheme(): void {
  const saved = store.get(KEY);
  apply(saved === "dark" || saved === "light" ? saved : systemTheme());
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener("change", () => {
    const s = store.get(KEY);
    if (s !== "dark" && s !== "light") apply(systemTheme());
  });
}

/** Switches theme and remembers the choice. */
export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === "dark" ? "light" : "dark";
  store.set(KEY, next);
  apply(next);
  return next;
}

/** A CSS variable's value on the root element. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A distinct colour for series `i` (a fixed palette, then golden-angle hues). */
export function seriesColour(i: number): string {
  const palette = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
  ];
  if (i < palette.length) return palette[i]!;
  const hue = (i * 137.508) % 360;
  return `hsl(${hue.toFixed(0)}, 65%, 50%)`;
}
