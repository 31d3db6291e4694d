/**
 * The dashboard's entry point: the top bar (navigation, theme toggle, live indicator, the
 * shortcut list), the router that swaps pages, the keyboard listener, the page-wide drop target
 * that imports bundles, and the store-changed stream that pages refresh on.
 */
import "./styles.css";
import { alertsApi, openChanges } from "./api";
import { installBundleDrop } from "./components/bundle_import";
import { alertsEvent, onUnacked, setUnacked } from "./lib/alerts";
import { h, message, replace } from "./lib/dom";
import { installKeyboard, showHelp } from "./lib/keyboard";
import { initTheme, toggleTheme, currentTheme } from "./lib/theme";
import { alertsPage } from "./pages/alerts";
import { artifactsPage, lineagePage } from "./pages/artifacts";
import { comparePage } from "./pages/compare";
import { fleetPage } from "./pages/fleet";
import type { Page } from "./pages/page";
import { remotesPage } from "./pages/remotes";
import { runPage } from "./pages/run";
import { runsPage } from "./pages/runs";
import { onRouteChange, type Route } from "./router";

initTheme();
installKeyboard();
installBundleDrop();

const nav = (href: string, label: string, page: string) => h("a", { href, class: "nav-link", dataset: { page } }, label);
const themeBtn = h("button", { type: "button", class: "btn theme-toggle", title: "Toggle dark mode" });
const setThemeLabel = () => {
  const dark = currentTheme() === "dark";
  themeBtn.textContent = dark ? "☀ Light" : "☾ Dark";
  themeBtn.setAttribute("aria-pressed", String(dark));
};
themeBtn.addEventListener("click", () => {
  toggleTheme();
  setThemeLabel();
});
setThemeLabel();

const liveDot = h("span", { class: "live-dot", title: "Connecting to the hub…" });
const keysBtn = h("button", { type: "button", class: "btn keys-btn", title: "Keyboard shortcuts (?)", attrs: { "aria-label": "Keyboard shortcuts" } }, "?");
keysBtn.addEventListener("click", () => showHelp());
// The alerts link carries the count of unacknowledged alerts (hidden at 0).
const alertCount = h("span", { class: "alert-count", attrs: { "aria-label": "unacknowledged alerts" } });
const alertsLink = nav("#/alerts", "Alerts", "alerts");
alertsLink.append(" ", alertCount);
onUnacked((n) => {
  alertCount.textContent = n > 0 ? String(n) : "";
  alertCount.hidden = n === 0;
  alertsLink.classList.toggle("has-alerts", n > 0);
  alertsLink.title = n > 0 ? `${n} alert${n === 1 ? "" : "s"} to acknowledge` : "No alerts to acknowledge";
});
setUnacked(0);
const links = [nav("#/runs", "Runs", "runs"), nav("#/artifacts", "Artifacts", "artifacts"), nav("#/fleet", "Fleet", "fleet"), nav("#/remotes", "Remotes", "remotes"), alertsLink, nav("#/trash", "Recycle bin", "trash")];
const bar = h(
  "header",
  { class: "topbar" },
  h("a", { href: "#/runs", class: "brand" }, "Runicorn"),
  h("nav", { class: "nav" }, ...links),
  h("span", { class: "spacer" }),
  liveDot,
  keysBtn,
  themeBtn,
);
const main = h("main", { id: "content" });
const app = document.getElementById("app") ?? document.body;
replace(app, bar, main);

let current: Page | null = null;

function pageFor(route: Route): Page {
  switch (route.page) {
    case "runs":
      return runsPage(route.params, false);
    case "trash":
      return runsPage(route.params, true);
    case "run":
      return runPage(route.ref, route.params);
    case "compare":
      return comparePage(route.runs, route.params);
    case "remotes":
      return remotesPage();
    case "fleet":
      return fleetPage();
    case "artifacts":
      return artifactsPage(route.params);
    case "lineage":
      return lineagePage(route.params);
    case "alerts":
      return alertsPage(route.params);
    default:
      return { el: message("error", "No such page. ", h("a", { href: "#/runs" }, "Go to the runs table.")), destroy: () => {} };
  }
}

onRouteChange((route) => {
  current?.destroy();
  window.__runicornRendered = undefined;
  current = pageFor(route);
  replace(main, current.el);
  const active = route.page === "run" || route.page === "compare" ? "runs" : route.page === "lineage" ? "artifacts" : route.page;
  for (const l of links) l.classList.toggle("active", l.dataset.page === active);
  document.title = `Runicorn — ${route.page === "run" ? `run ${route.ref}` : route.page}`;
});

// Store changes (a sync wrote something): pages listening refresh.
openChanges(
  () => window.dispatchEvent(new Event("runicorn:changed")),
  (connected) => {
    liveDot.classList.toggle("on", connected);
    liveDot.title = connected ? "Live: updates arrive as the hub syncs" : "Not connected to the hub; retrying…";
  },
  alertsEvent,
);
// The badge's first count; the event stream keeps it current from then on.
alertsApi
  .list()
  .then((a) => setUnacked(a.unacked))
  .catch(() => {});
