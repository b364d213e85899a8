// Measures the dashboard with a large fleet: starts `hearth serve` (SQLite
// by default, or --database-url), creates N workspaces through the API, and
// times in headless Chromium: sign-in to the first page of the fleet shown,
// switching to the next page, a name search, and the workspace view.
//
//   node ui-tests/measure.mjs [--workspaces 10000] [--database-url URL]
//
// Environment: HEARTH_BIN, CHROMIUM as for dashboard.test.mjs. Figures are
// printed, not asserted (this is a measurement, not a test).

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const hearthBin = process.env.HEARTH_BIN || join(resolve(here, ".."), "target/debug/hearth");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const count = Number(arg("--workspaces", "10000"));
const databaseUrl = arg("--database-url", null);
const data = mkdtempSync(join(tmpdir(), "hearth-measure-"));

const args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--rate-limit-per-token", "0"];
if (databaseUrl) args.push("--database-url", databaseUrl);
const server = spawn(hearthBin, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "warn" } });
const url = await new Promise((ok, fail) => {
  let out = "";
  server.stdout.on("data", (c) => {
    out += c;
    const m = out.match(/hearth listening on (http:\/\/\S+)/);
    if (m) ok(m[1]);
  });
  server.on("exit", (code) => fail(new Error(`hearth serve exited with ${code}`)));
});
const token = readFileSync(join(data, "admin-token"), "utf8").trim();
const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  let created = 0;
  const seedStart = performance.now();
  const worker = async () => {
    while (created < count) {
      const i = created++;
      const response = await fetch(`${url}/workspaces`, { method: "POST", headers, body: JSON.stringify({ name: `w-${String(i).padStart(5, "0")}` }) });
      if (response.status !== 201) throw new Error(`create ${i}: ${response.status} ${await response.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  console.log(`seeded ${count} workspaces in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

  // The API alone (what each view asks), median of 9 calls each.
  const api = async (path) => {
    const times = [];
    let next = null;
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      const response = await fetch(`${url}${path}`, { headers });
      await response.text();
      times.push(performance.now() - t0);
      next = response.headers.get("x-next-cursor");
    }
    return { ms: median(times), next };
  };
  const first = await api("/workspaces?limit=50");
  let cursor = first.next;
  for (let i = 0; i < 100 && cursor; i++) {
    const response = await fetch(`${url}/workspaces?limit=50&cursor=${encodeURIComponent(cursor)}`, { headers });
    await response.text();
    cursor = response.headers.get("x-next-cursor");
  }
  const apiFigures = {
    page_of_50_ms: first.ms,
    page_101_of_50_ms: (await api(`/workspaces?limit=50&cursor=${encodeURIComponent(cursor)}`)).ms,
    counts_ms: (await api("/workspaces/counts")).ms,
    search_ms: (await api("/workspaces?limit=50&q=w-09999")).ms,
    status_filter_ms: (await api("/workspaces?limit=50&status=provisioning")).ms,
  };
  for (const key of Object.keys(apiFigures)) apiFigures[key] = Math.round(apiFigures[key] * 10) / 10;
  console.log("api (median of 9):", JSON.stringify(apiFigures));

  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${url}/`);
  await page.getByLabel("Admin or org token").fill(token);
  let t = performance.now();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#fleet tbody tr").first().waitFor();
  const firstPage = performance.now() - t;

  const switches = [];
  for (let i = 0; i < 9; i++) {
    const before = await page.locator("#fleet tbody tr").first().getAttribute("data-id");
    t = performance.now();
    await page.getByRole("button", { name: "Next →" }).click();
    await page.waitForFunction((id) => {
      const row = document.querySelector("#fleet tbody tr");
      return row && row.dataset.id !== id;
    }, before);
    switches.push(performance.now() - t);
  }
  t = performance.now();
  await page.getByLabel("Search by name").fill(`w-${String(count - 1).padStart(5, "0")}`);
  await page.locator(`#fleet tr[data-name="w-${String(count - 1).padStart(5, "0")}"]`).waitFor();
  const search = performance.now() - t - 250; // minus the input debounce
  await page.getByLabel("Search by name").fill("");
  await page.locator("#fleet tbody tr").nth(10).waitFor();
  t = performance.now();
  await page.locator("#fleet tbody tr a").first().click();
  await page.locator("#conditions").waitFor();
  const workspaceView = performance.now() - t;
  await browser.close();
  console.log(
    JSON.stringify(
      {
        workspaces: count,
        engine: databaseUrl ? "postgres" : "sqlite",
        first_page_ms: Math.round(firstPage),
        page_switch_median_ms: Math.round(median(switches)),
        page_switch_max_ms: Math.round(Math.max(...switches)),
        name_search_ms: Math.round(search),
        workspace_view_ms: Math.round(workspaceView),
      },
      null,
      2,
    ),
  );
} finally {
  server.kill("SIGTERM");
  await new Promise((done) => server.on("exit", done));
  rmSync(data, { recursive: true, force: true });
}
