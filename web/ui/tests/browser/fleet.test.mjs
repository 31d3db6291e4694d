// The Fleet page (`#/fleet`) in Chromium with samples from a real run: a real
// `runicorn-agent run -- sh -c '…; exec sleep 300'` writes a run into a local root, the stand-in
// `nvidia-smi` of the agent's tests answers as the 8-GPU host with the run's wrapper on GPU 2 and
// its sleeping child on GPU 5 (beside another user's process; GPUs 0, 1 and 6 busy with other
// users' processes, 3, 4 and 7 free), and a real `runicorn-hub ui` follows that root through
// the real agent (the stand-in first on its PATH) and a second root whose agent has no
// nvidia-smi. The page shows "3 of 8 GPUs free", the run holding GPUs 2 and 5 as a link to its
// run page, the free GPUs marked, the empty state of the host without GPUs, and follows a
// change of the GPUs while open. Screenshots in light and dark.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, repoRoot, runHub, screenshot, startHub, tempDir } from "./support.mjs";

const AGENT = process.env.RUNICORN_AGENT_BIN ?? path.join(repoRoot, "target/debug/runicorn-agent");
const FIXTURES = path.join(repoRoot, "agent/tests/fixtures/nvidia-smi");

let hub;
let browser;
let tmp;
let run;
let smiDir;
let wrapper;

/** Writes the stand-in's answers: the 8-GPU recording with the run's pids put in. */
function writeAnswers(runPid, childPid, extraApps = "") {
  fs.copyFileSync(path.join(FIXTURES, "host-8gpu/query-gpu.csv"), path.join(smiDir, "query-gpu.csv"));
  const apps = fs
    .readFileSync(path.join(FIXTURES, "host-8gpu/query-compute-apps.csv"), "utf8")
    .replace("{RUN_PID}", String(runPid))
    .replace("{RUN_CHILD_PID}", String(childPid));
  fs.writeFileSync(path.join(smiDir, "query-compute-apps.csv"), apps + extraApps);
}

async function waitFor(what, check, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  tmp = tempDir();
  const hubDir = path.join(tmp.dir, "hub");
  const root = path.join(tmp.dir, "root");
  const bare = path.join(tmp.dir, "bare-root");
  fs.mkdirSync(bare);
  smiDir = path.join(tmp.dir, "smi");
  fs.mkdirSync(smiDir);
  fs.copyFileSync(path.join(FIXTURES, "stand-in.sh"), path.join(smiDir, "nvidia-smi"));
  fs.chmodSync(path.join(smiDir, "nvidia-smi"), 0o755);

  const pidFile = path.join(tmp.dir, "child.pid");
  wrapper = spawn(AGENT, ["run", "--root", root, "--path", "vision/resnet50", "--", "sh", "-c", `echo $$ > ${pidFile}; exec sleep 300`], {
    stdio: "ignore",
  });
  const childPid = await waitFor("the run's child", () => {
    const text = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, "utf8").trim() : "";
    return text ? Number(text) : 0;
  });
  writeAnswers(wrapper.pid, childPid);
  run = { wrapperPid: wrapper.pid, childPid };

  // The agent of the second root sees no nvidia-smi at all.
  const bareAgent = path.join(tmp.dir, "agent-without-gpus");
  fs.writeFileSync(bareAgent, `#!/bin/sh\nPATH=/usr/bin:/bin exec ${AGENT} "$@"\n`);
  fs.chmodSync(bareAgent, 0o755);

  process.env.PATH = `${smiDir}:${process.env.PATH}`;
  runHub(["--hub-dir", hubDir, "connect", `local:${root}`, "--name", "gpu-box", "--agent", AGENT, "--once", "--no-ui", "--prefetch", "none"]);
  runHub(["--hub-dir", hubDir, "connect", `local:${bare}`, "--name", "laptop", "--agent", bareAgent, "--once", "--no-ui", "--prefetch", "none"]);
  hub = await startHub(["--hub-dir", hubDir, "ui", "--port", "0"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  if (run) {
    for (const pid of [run.childPid, run.wrapperPid]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  tmp?.cleanup();
});

/** What the page shows of each GPU of a remote's card. */
function gpuRows(page, remote) {
  return page.evaluate(
    (remote) =>
      [...document.querySelectorAll(`.fleet-card[data-remote="${remote}"] tr.fleet-gpu`)].map((tr) => ({
        index: Number(tr.dataset.gpu),
        free: tr.dataset.free === "true",
        holder: tr.querySelector(".fleet-holder")?.textContent ?? "",
        links: [...tr.querySelectorAll("a.fleet-run")].map((a) => a.getAttribute("href")),
        util: tr.querySelector(".fleet-bar-util")?.getAttribute("aria-valuenow"),
      })),
    remote,
  );
}

test("the Fleet page shows free GPUs, the run holding each and a host without GPUs", async () => {
  const errors = [];
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${hub.url}#/fleet`);
  await page.waitForSelector('.fleet-card[data-remote="gpu-box"] tr.fleet-gpu', { timeout: 30_000 });
  assert.equal(await page.getAttribute('.nav-link[data-page="fleet"]', "class"), "nav-link active");
  assert.equal(await page.textContent(".fleet-free-count"), "3 of 8 GPUs free");

  const rows = await gpuRows(page, "gpu-box");
  assert.deepEqual(
    rows.filter((r) => r.free).map((r) => r.index),
    [3, 4, 7],
  );
  const runs = await fetch(new URL("/api/runs?remote=gpu-box", hub.url)).then((r) => r.json());
  assert.equal(runs.runs.length, 1);
  const { key, run_id: runId } = runs.runs[0];
  assert.deepEqual(rows[2].links, [`#/run/${key}`], "the wrapper's GPU");
  assert.deepEqual(rows[5].links, [`#/run/${key}`], "the child's GPU");
  assert.match(rows[5].holder, /\+ 1 other process/);
  assert.deepEqual(rows[0].links, [], "another user's GPU");
  assert.match(rows[0].holder, /1 other process/);
  assert.equal(rows[2].util, "87");
  const card = page.locator('.fleet-card[data-remote="gpu-box"]');
  assert.equal(await card.getAttribute("data-state"), "live");
  assert.match(await card.locator(".fleet-card-head").textContent(), /last heard/);
  assert.match(await card.locator(".fleet-card-free").textContent(), /3 of 8 free/);

  // The host without nvidia-smi: its card, with the empty state.
  const laptop = page.locator('.fleet-card[data-remote="laptop"]');
  assert.match(await laptop.locator(".state-empty").textContent(), /No GPUs on this host/);

  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  if ((await theme()) !== "light") await page.click(".theme-toggle");
  await screenshot(page, "fleet-light");
  await page.click(".theme-toggle");
  await screenshot(page, "fleet-dark");
  await page.click(".theme-toggle");

  // The holder's link opens its run page.
  await page.click('.fleet-card[data-remote="gpu-box"] tr.fleet-gpu[data-gpu="2"] a.fleet-run');
  await page.waitForFunction((id) => document.body.textContent.includes(id), runId, { timeout: 15_000 });
  assert.match(page.url(), new RegExp(`#/run/${key}$`));
  assert.deepEqual(errors, []);
  await page.close();
});

test("the Fleet page follows the GPUs while it is open", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${hub.url}#/fleet`);
  await page.waitForSelector('.fleet-card[data-remote="gpu-box"] tr.fleet-gpu[data-gpu="3"][data-free="true"]', { timeout: 30_000 });
  // The run's child takes GPU 3 too: the hub's next host sample (every 10 s) shows it.
  const gpu3 = "GPU-25b2116a-ae6c-4f55-8e0c-3f08e12656f1";
  writeAnswers(run.wrapperPid, run.childPid, `${run.childPid}, ${gpu3}, 1024\n`);
  await page.waitForSelector('.fleet-card[data-remote="gpu-box"] tr.fleet-gpu[data-gpu="3"][data-free="false"] a.fleet-run', { timeout: 45_000 });
  assert.equal(await page.textContent(".fleet-free-count"), "2 of 8 GPUs free");
  await screenshot(page, "fleet-live-update");
  await page.close();
});
