// Keyboard shortcuts of the runs page in headless Chromium on the real `runicorn-hub demo`:
// `/` focuses the filter, `j`/`k` move through the runs, `x`/space select, `c` compares,
// `Enter` opens, `?` lists the shortcuts and `Esc` closes the list; none fires while typing.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { demoArgs, hubAndBrowser, screenshot } from "./support.mjs";

const RUNS = 7;
let hub;
let browser;
let tmp;
const pageErrors = [];

hubAndBrowser(demoArgs, (f) => ({ hub, browser, tmp } = f));

async function open(hash) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}${hash}`);
  await page.waitForFunction((n) => document.querySelectorAll("tr.run-row").length === n, RUNS, { timeout: 60_000 });
  return page;
}

/** The key of the row under the keyboard cursor (null when none). */
async function cursor(page) {
  return page.evaluate(() => {
    const tr = document.querySelector("tr.run-row.cursor");
    return tr ? Number(tr.dataset.id) : null;
  });
}

async function rowKeys(page) {
  return page.$$eval("tr.run-row", (rs) => rs.map((r) => Number(r.dataset.id)));
}

async function checked(page) {
  return page.$$eval("tr.run-row", (rs) => rs.filter((r) => r.querySelector("td.col-select input").checked).map((r) => Number(r.dataset.id)));
}

test("j/k move through the runs, x and space select, c compares the selection", async () => {
  const page = await open("#/runs?sort=created_at");
  const keys = await rowKeys(page);
  assert.equal(await cursor(page), null);
  await page.keyboard.press("j");
  assert.equal(await cursor(page), keys[0]);
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  assert.equal(await cursor(page), keys[2]);
  await page.keyboard.press("k");
  assert.equal(await cursor(page), keys[1]);
  await page.keyboard.press("x");
  assert.deepEqual(await checked(page), [keys[1]]);
  assert.equal(await page.textContent(".sel-info"), "1 selected");
  // c with one run selected does nothing (Compare needs two).
  await page.keyboard.press("c");
  assert.match(page.url(), /#\/runs/);
  await page.keyboard.press("j");
  await page.keyboard.press(" ");
  assert.deepEqual(await checked(page), [keys[1], keys[2]]);
  // space again unselects, x selects back
  await page.keyboard.press(" ");
  assert.deepEqual(await checked(page), [keys[1]]);
  await page.keyboard.press("x");
  // k at the top stays at the top
  for (let i = 0; i < 5; i++) await page.keyboard.press("k");
  assert.equal(await cursor(page), keys[0]);
  await page.keyboard.press("c");
  await page.waitForURL(/#\/compare\?runs=/);
  const runs = new URL(page.url().replace("#/", "")).searchParams.get("runs").split(",").map(Number).sort();
  assert.deepEqual(runs, [keys[1], keys[2]].sort());
  await page.close();
});

test("j/k go on to the next or previous page past the page's last or first run", async () => {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(`${hub.url}#/runs?sort=created_at&limit=2`);
  await page.waitForFunction(() => document.querySelectorAll("tr.run-row").length === 2, null, { timeout: 60_000 });
  const all = await page.evaluate(async () => (await (await fetch("/api/runs?limit=1000&sort=created_at")).json()).runs.map((r) => r.key));
  assert.equal(all.length, RUNS);
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  assert.equal(await cursor(page), all[1]);
  await page.keyboard.press("j");
  await page.waitForFunction((n) => document.querySelector(".page-info")?.textContent === `3–4 of ${n}`, RUNS);
  await page.waitForFunction((k) => document.querySelector("tr.run-row.cursor")?.dataset.id === String(k), all[2]);
  await page.keyboard.press("j");
  assert.equal(await cursor(page), all[3]);
  await page.keyboard.press("k");
  await page.keyboard.press("k");
  await page.waitForFunction((n) => document.querySelector(".page-info")?.textContent === `1–2 of ${n}`, RUNS);
  await page.waitForFunction((k) => document.querySelector("tr.run-row.cursor")?.dataset.id === String(k), all[1]);
  await page.close();
});

test("Enter opens the run under the cursor", async () => {
  const page = await open("#/runs?sort=created_at");
  const keys = await rowKeys(page);
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  await page.keyboard.press("Enter");
  await page.waitForURL(new RegExp(`#/run/${keys[1]}$`));
  await page.close();
});

test("/ focuses the filter; keys typed there are text, not shortcuts; Esc leaves it", async () => {
  const page = await open("#/runs?sort=created_at");
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement?.classList.contains("filter")), true);
  assert.equal(await page.inputValue("input.filter"), "");
  await page.keyboard.type("jkxc?");
  assert.equal(await page.inputValue("input.filter"), "jkxc?");
  assert.equal(await cursor(page), null);
  assert.equal(await page.locator(".shortcut-help").count(), 0);
  assert.deepEqual(await checked(page), []);
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.activeElement?.classList.contains("filter")), false);
  await page.fill("input.filter", "");
  await page.keyboard.press("Escape");
  await page.keyboard.press("j");
  assert.notEqual(await cursor(page), null);
  await page.close();
});

test("? lists the shortcuts in force and Esc closes the list", async () => {
  const page = await open("#/runs?sort=created_at");
  await page.keyboard.press("?");
  await page.waitForSelector(".shortcut-help[role=dialog]");
  const labels = await page.$$eval(".shortcut-table kbd", (ks) => ks.map((k) => k.textContent));
  for (const k of ["?", "Esc", "/", "j", "k", "Enter", "x / space", "c"]) assert.ok(labels.includes(k), `${k} in ${labels}`);
  // While the list is open, shortcuts do not act on the page behind it.
  await page.keyboard.press("j");
  assert.equal(await cursor(page), null);
  await screenshot(page, "runs-keyboard-shortcuts");
  await page.keyboard.press("Escape");
  assert.equal(await page.locator(".shortcut-help").count(), 0);
  // The top bar's ? button opens the same list.
  await page.click("button.keys-btn");
  await page.waitForSelector(".shortcut-help");
  await page.keyboard.press("Escape");
  assert.equal(await page.locator(".shortcut-help").count(), 0);
  // The run page registers none of the runs page's: j does nothing there.
  await page.goto(`${hub.url}#/remotes`);
  await page.keyboard.press("?");
  await page.waitForSelector(".shortcut-help");
  const there = await page.$$eval(".shortcut-table kbd", (ks) => ks.map((k) => k.textContent));
  assert.deepEqual(there, ["?", "Esc"]);
  await page.close();
});

test("no page errors", () => {
  assert.deepEqual(pageErrors, []);
});
