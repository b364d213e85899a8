// End-to-end test of the Hearth dashboard in a real headless Chromium.
//
// Starts `hearth serve` (SQLite, a temp data dir), signs in with the admin
// token, and checks what an operator relies on: a workspace created from the
// CLI appears and goes online live (no reload), its plugin shows installed,
// pausing from the page pauses it (the CLI agrees), a refused action shows
// the API's message verbatim, and the page says when it lost the server and
// comes back by itself. The browser may reach the Hearth origin only: every
// other request is aborted, and the test fails if one was even tried.
//
// Environment: HEARTH_BIN (the hearth binary), CHROMIUM (default
// /usr/bin/chromium), UI_SCREENSHOTS (default ui-tests/screenshots),
// HEARTH_UI_DATABASE_URL (a database for the server; default its SQLite).

import { spawn, execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..");
const hearthBin = process.env.HEARTH_BIN || join(repo, "target/debug/hearth");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = resolve(process.env.UI_SCREENSHOTS || join(here, "screenshots"));
const WAIT = 30_000; // the longest any one expectation may take (an upper bound, not a measurement)
const run = promisify(execFile);

// Every process this test starts; none may outlive it, pass, fail or
// interrupt: `finally` stops them (SIGTERM, then SIGKILL), and whatever
// ends node without it (a signal, an uncaught error) kills what is left on
// the way out.
const children = [];
const data = mkdtempSync(join(tmpdir(), "hearth-ui-"));
const running = (child) => child.exitCode === null && child.signalCode === null;
process.on("exit", () => {
  for (const child of children) if (running(child)) child.kill("SIGKILL");
  rmSync(data, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    console.error(`ui-test: interrupted (${signal}); stopping what it started`);
    process.exit(1);
  });
}

function step(text) {
  console.log(`ui-test: ${text}`);
}

// `hearth serve` on `listen`; resolves with its URL once it says it listens.
function serve(listen, extra = []) {
  const args = ["serve", "--listen", listen, "--data-dir", join(data, "server"), "--sweep-interval", "1", ...extra];
  if (process.env.HEARTH_UI_DATABASE_URL) args.push("--database-url", process.env.HEARTH_UI_DATABASE_URL);
  const child = spawn(hearthBin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  children.push(child);
  child.stderr.on("data", (chunk) => process.stderr.write(`[serve] ${chunk}`));
  return new Promise((resolveUrl, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/hearth listening on (http:\/\/\S+)/);
      if (match) resolveUrl({ child, url: match[1] });
    });
    child.on("exit", (code) => reject(new Error(`hearth serve exited with ${code} before listening`)));
  });
}

// SIGTERM, then SIGKILL if the child has not exited within 10 s. (A child
// ended by a signal has no exit code, only a signal code.)
async function stop(child) {
  if (!running(child)) return;
  const exited = new Promise((done) => child.once("exit", done));
  child.kill("SIGTERM");
  const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(kill);
}

let url;
let token;

async function cli(...args) {
  const { stdout } = await run(hearthBin, ["--server", url, "--token", token, ...args], { cwd: repo });
  return stdout;
}

async function main() {
  mkdirSync(shots, { recursive: true });
  step(`screenshots go to ${shots}`);
  let server = await serve("127.0.0.1:0");
  url = server.url;
  const origin = new URL(url).origin;
  token = readFileSync(join(data, "server", "admin-token"), "utf8").trim();
  step(`hearth serve at ${url} on ${process.env.HEARTH_UI_DATABASE_URL ? "PostgreSQL" : "SQLite"}`);

  await cli("plugin", "push", join(repo, "examples/plugins/seo-all"));
  await cli("template", "push", join(repo, "examples/templates/seo-agent"));

  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Only the Hearth origin is reachable: everything else is aborted and noted.
  const elsewhere = [];
  const requested = [];
  await context.route("**/*", (route) => {
    const target = route.request().url();
    requested.push(target);
    if (new URL(target).origin === origin) return route.continue();
    elsewhere.push(target);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  step("sign in");
  await page.goto(`${url}/`);
  await page.getByLabel("Admin or org token").fill("not-a-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "admin auth required" }).waitFor({ timeout: WAIT });
  await page.getByLabel("Admin or org token").fill(token);
  await page.keyboard.press("Enter"); // the form submits from the keyboard
  await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: WAIT });
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: WAIT });
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("hearth.token"), cookie: document.cookie, href: location.href }));
  assert.equal(stored.session, token, "the token is kept in sessionStorage");
  assert.equal(stored.cookie, "", "no cookie");
  assert.ok(!stored.href.includes(token), "the token is never in the URL");

  // A marker that a reload would wipe.
  await page.evaluate(() => {
    window.hearthNoReload = true;
  });

  step("a workspace created from the CLI appears live");
  const created = JSON.parse(await cli("--json", "workspace", "create", "ui-agent", "--template", "seo-agent"));
  const row = page.locator('#fleet tr[data-name="ui-agent"]');
  await row.waitFor({ timeout: WAIT });
  assert.equal(await row.getAttribute("data-status"), "provisioning");

  step("its runtime starts; the row goes online with its plugin installed, without a reload");
  const agent = spawn(hearthBin, ["agent", "--server", url, "--workspace", created.id, "--dir", join(data, "agent"), "--heartbeat-interval", "1"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, HEARTH_TOKEN: "" },
  });
  children.push(agent);
  agent.stderr.on("data", (chunk) => process.stderr.write(`[agent] ${chunk}`));
  await page.locator('#fleet tr[data-name="ui-agent"][data-status="online"]').waitFor({ timeout: WAIT });
  await row.locator('[data-condition="PluginsInstalled=True"]').waitFor({ timeout: WAIT });
  await row.locator('[data-condition="AssetsDelivered=True"]').waitFor({ timeout: WAIT });
  await row.getByText("online", { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => window.hearthNoReload), true, "the page was not reloaded");
  await page.locator('[data-count="online"]').filter({ hasText: "1" }).waitFor({ timeout: WAIT });
  await page.screenshot({ path: join(shots, "fleet.png"), fullPage: true });

  step("filter and search");
  await page.getByLabel("Search by name").fill("no-such-name");
  await page.getByText("No workspace matches.").waitFor({ timeout: WAIT });
  await page.getByLabel("Search by name").fill("UI-AG");
  await row.waitFor({ timeout: WAIT });
  await page.getByLabel("Search by name").fill("");

  step("the workspace view shows its plugin installed");
  await row.getByRole("link", { name: "ui-agent" }).click();
  await page.getByRole("heading", { name: /ui-agent/ }).waitFor({ timeout: WAIT });
  await page.locator('#plugins tr[data-plugin="seo-all"][data-plugin-state="installed"]').waitFor({ timeout: WAIT });
  await page.locator('#conditions tr[data-condition="PluginsInstalled"][data-condition-status="True"]').waitFor({ timeout: WAIT });
  await page.locator('.tree [data-path="config.yaml"]').waitFor({ timeout: WAIT });
  await page.locator('#timeline [data-event="WORKSPACE_ONLINE"]').waitFor({ timeout: WAIT });
  await page.screenshot({ path: join(shots, "workspace.png"), fullPage: true });

  step("a confirmation can be cancelled from the keyboard");
  await page.locator('button[data-action="restart"]').focus();
  await page.keyboard.press("Enter");
  await page.locator("dialog#confirm[open]").waitFor();
  await page.keyboard.press("Escape");
  await page.locator("dialog#confirm").waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.dataset.action), "restart", "focus returns to the button");

  step("pause from the page; the CLI agrees");
  await page.locator('button[data-action="pause"]').click();
  await page.getByRole("button", { name: "Pause ui-agent" }).click();
  await page.locator('main[data-status="paused"]').waitFor({ timeout: WAIT });
  await page.getByRole("heading", { name: /ui-agent/ }).getByText("paused", { exact: true }).waitFor();
  const viaCli = JSON.parse(await cli("--json", "workspace", "get", created.id));
  assert.equal(viaCli.status, "paused", "hearth workspace get agrees");
  const pausedBy = page.locator('#timeline [data-event="WORKSPACE_PAUSED"] [data-actor="operator"]');
  await pausedBy.waitFor({ timeout: WAIT });
  assert.equal((await pausedBy.textContent()).trim(), "by admin", "the timeline says who paused it");
  assert.equal((await page.locator("#whoami").textContent()).trim(), "admin (every org)", "the header says who is signed in");

  step("a refused action shows the API's message verbatim");
  await page.locator('button[data-action="pause"]').click();
  await page.getByRole("button", { name: "Pause ui-agent" }).click();
  const refusal = page.locator("#action-result [data-refusal]");
  await refusal.waitFor({ timeout: WAIT });
  const shown = (await refusal.textContent()).trim();
  const direct = await fetch(`${url}/workspaces/${created.id}/pause`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  const body = await direct.json();
  assert.equal(direct.status, 409);
  assert.equal(shown, body.error, "the page shows the API's error as is");
  assert.equal(await refusal.getAttribute("data-refusal"), "409");

  step("templates and plugins: contents and who uses them");
  await page.getByRole("link", { name: "Templates" }).click();
  await page.getByRole("link", { name: "seo-agent" }).click();
  await page.locator('.tree [data-path="prompts/system.md"]').waitFor({ timeout: WAIT });
  await page.locator(".used-by").getByRole("link", { name: "ui-agent" }).waitFor({ timeout: WAIT });
  await page.getByRole("link", { name: "Plugins" }).first().click();
  await page.locator('#plugin-list tr[data-plugin="seo-all"] a').click();
  await page.locator('.tree [data-path="plugin.yaml"]').waitFor({ timeout: WAIT });
  await page.locator(".used-by").getByRole("link", { name: "ui-agent" }).waitFor({ timeout: WAIT });

  await craftedLinks(page, created.id);
  await viewerSession(context, created.id);
  await orgsOfTheAdmin(context);

  step("losing the server shows; the page reconnects by itself and resumes");
  await page.getByRole("link", { name: "Fleet" }).click();
  await row.waitFor({ timeout: WAIT });
  const listen = new URL(url).host;
  await stop(server.child);
  await page.locator('#connection[data-state="reconnecting"], #connection[data-state="disconnected"]').waitFor({ timeout: WAIT });
  assert.match(await page.locator("#connection").textContent(), /Disconnected|Reconnecting/);
  server = await serve(listen);
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: 60_000 });
  await cli("workspace", "resume", created.id);
  await page.locator('#fleet tr[data-name="ui-agent"]:not([data-status="paused"])').waitFor({ timeout: WAIT });
  assert.equal(await page.evaluate(() => window.hearthNoReload), true, "still no reload");

  step("nothing left the Hearth origin");
  assert.deepEqual(elsewhere, [], "requests to other origins were tried");
  assert.ok(requested.length > 5 && requested.every((r) => new URL(r).origin === origin), "every request went to Hearth");
  const unexpected = consoleErrors.filter((text) => !/Failed to load resource|net::ERR_|409|Unauthorized|401/.test(text));
  assert.deepEqual(unexpected, [], "no script errors");

  await longTimeline(browser);
  await compactedFeed(browser, server);

  await browser.close();
  step(`OK; screenshots: ${join(shots, "fleet.png")}, ${join(shots, "workspace.png")}, ${join(shots, "invalid-link.png")}, ${join(shots, "timeline-truncated.png")}`);
}

// A viewer's token: the header says so, the workspace view offers no
// action (the server would refuse them: 403), the timeline still reads.
async function viewerSession(context, workspaceId) {
  step("a viewer sees its role and no action");
  const made = await fetch(`${url}/org/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "ui-viewer", role: "viewer" }),
  });
  assert.equal(made.status, 201, "POST /org/tokens (viewer)");
  const viewer = await made.json();
  const tab = await context.newPage();
  await tab.goto(`${url}/#/workspaces/${workspaceId}`);
  await tab.getByLabel("Admin or org token").fill(viewer.auth_token);
  await tab.getByRole("button", { name: "Sign in" }).click();
  await tab.getByRole("heading", { name: /ui-agent/ }).waitFor({ timeout: WAIT });
  await tab.locator('#timeline [data-event="WORKSPACE_ONLINE"]').waitFor({ timeout: WAIT });
  assert.match((await tab.locator("#whoami").textContent()).trim(), /^viewer of org [0-9a-f]{8}$/);
  assert.equal(await tab.locator("button[data-action]").count(), 0, "no action is offered to a viewer");
  const refused = await fetch(`${url}/workspaces/${workspaceId}/pause`, { method: "POST", headers: { Authorization: `Bearer ${viewer.auth_token}` } });
  assert.equal(refused.status, 403, "and the server refuses one anyway");
  await tab.screenshot({ path: join(shots, "viewer.png"), fullPage: true });
  await tab.close();
}

// The admin's org switcher narrows the fleet to one org, and the orgs page
// shows each org's quota use.
async function orgsOfTheAdmin(context) {
  step("the admin switches org and sees each org's quota use");
  const admin = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const org = await (await fetch(`${url}/orgs`, { method: "POST", headers: admin, body: JSON.stringify({ name: "ui-team" }) })).json();
  const made = await fetch(`${url}/workspaces?org=${org.id}`, { method: "POST", headers: admin, body: JSON.stringify({ name: "team-agent" }) });
  assert.equal(made.status, 201, "a workspace in ui-team");
  const quota = await fetch(`${url}/orgs/${org.id}/quotas`, { method: "PUT", headers: admin, body: JSON.stringify({ workspaces: 1 }) });
  assert.equal(quota.status, 200, "PUT /orgs/{id}/quotas");
  const tab = await context.newPage();
  await tab.goto(`${url}/`);
  await tab.getByLabel("Admin or org token").fill(token);
  await tab.getByRole("button", { name: "Sign in" }).click();
  await tab.locator('#fleet tr[data-name="ui-agent"]').waitFor({ timeout: WAIT });
  await tab.locator("#org-switch").selectOption({ label: "ui-team" });
  await tab.locator('#fleet tr[data-name="team-agent"]').waitFor({ timeout: WAIT });
  assert.equal(await tab.locator('#fleet tr[data-name="ui-agent"]').count(), 0, "only ui-team's workspaces");
  await tab.getByRole("link", { name: "Orgs" }).click();
  const cell = tab.locator('#orgs tr[data-org="ui-team"] td[data-quota="workspaces"]');
  await cell.waitFor({ timeout: WAIT });
  assert.equal((await cell.textContent()).trim(), "1 of 1", "the quota's use");
  assert.equal(await cell.getAttribute("class"), "over", "a quota reached is marked");
  await tab.screenshot({ path: join(shots, "orgs.png"), fullPage: true });
  await tab.close();
}

// Org tokens as the API lists them, for comparing before and after.
async function orgTokens() {
  const response = await fetch(`${url}/org/tokens`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, "GET /org/tokens");
  return (await response.json()).map((t) => `${t.id} revoked_at=${t.revoked_at}`).sort();
}

// A crafted link must not steer the page's API calls. Each link is opened
// (one in a fresh tab, signing in first, as an operator following a link
// would), Delete and Pause are clicked and confirmed wherever the page
// offers them, and every request the page makes is recorded: none may be an
// API call (the event stream aside), the page must say what is wrong with
// the link, and the org token the links aim at must still work afterwards.
async function craftedLinks(page, workspaceId) {
  step("crafted links: checked before use, no API call steered");
  const minted = await fetch(`${url}/org/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "ui-link-target" }),
  });
  assert.equal(minted.status, 201, "an org token to aim at");
  const target = await minted.json();
  const tokensBefore = await orgTokens();

  const seen = [];
  const record = (request) => {
    const at = new URL(request.url());
    // Every API call is a fetch(); the page, its files and the event stream
    // are not steered by a link.
    if (request.resourceType() !== "fetch" || at.pathname === "/events/stream") return;
    seen.push(`${request.method()} ${at.pathname}${at.search}`);
  };
  page.on("request", record);

  const invalidId = /not a valid workspace id/;
  const links = [
    // Backslashes are slashes to the URL parser: Delete sent DELETE /org/tokens/<id>.
    { hash: `#/workspaces/..%5C..%5Corg%5Ctokens%5C${target.id}`, says: invalidId, freshTab: true },
    // A `#` ends the path before the action: Pause sent POST /org/tokens (a new token).
    { hash: "#/workspaces/..%5C..%5Corg%5Ctokens%23", says: invalidId },
    // A `?` turns the action into a query: the same POST /org/tokens.
    { hash: "#/workspaces/..%5C..%5Corg%5Ctokens%3F", says: invalidId },
    // `/..` segments, encoded inside the id and plain after it.
    { hash: `#/workspaces/${workspaceId}%2F..%2F..%2Forg%2Ftokens%2F${target.id}`, says: invalidId },
    { hash: `#/workspaces/${workspaceId}/../../org/tokens/${target.id}`, says: /no page at/ },
    { hash: "#/workspaces/%2E%2E", says: invalidId },
    // Templates and plugins: a name that cannot be one, and `..`.
    { hash: "#/templates/..", says: /not a valid template/ },
    { hash: "#/templates/%2E%2E%5C..%5Corg%5Ctokens%0A", says: /not a valid template/ },
    { hash: "#/plugins/..%5C..%5Corg%5Ctokens", says: /not a valid plugin name/ },
    // Not even percent-encoding.
    { hash: "#/workspaces/%E0%A4%A", says: /not a valid link/ },
  ];
  const problems = [];
  for (const link of links) {
    const from = seen.length;
    let tab = page;
    if (link.freshTab) {
      tab = await page.context().newPage();
      tab.on("request", record);
      await tab.goto(`${url}/${link.hash}`);
      await tab.getByLabel("Admin or org token").fill(token);
      await tab.keyboard.press("Enter");
      await tab.locator("form.signin").waitFor({ state: "detached", timeout: WAIT });
    } else {
      await tab.goto(`${url}/${link.hash}`);
    }
    await tab.locator("main h1").first().waitFor({ timeout: WAIT });
    for (const action of ["delete", "pause"]) {
      const button = tab.locator(`button[data-action="${action}"]`);
      if ((await button.count()) === 0 || !(await button.isEnabled())) continue;
      await tab.evaluate(() => document.getElementById("action-result").replaceChildren());
      await button.click();
      await tab.locator("dialog#confirm[open]").waitFor({ timeout: WAIT });
      await tab.locator("#confirm-ok").click();
      await tab.locator("#action-result p:not(.muted)").waitFor({ timeout: WAIT });
    }
    // Signing in checks the token, and the session reads its role, with
    // GET /whoami, and the admin's org switcher lists the orgs (GET /orgs):
    // not the link's doing.
    const made = seen.slice(from).filter((r) => !(link.freshTab && (r === "GET /whoami" || r === "GET /orgs")));
    if (made.length) problems.push(`${link.hash} made API requests: ${made.join(", ")}`);
    const said = await tab.locator("main [role=alert]").allTextContents();
    if (!said.some((text) => link.says.test(text))) problems.push(`${link.hash} does not say ${link.says} (it says ${JSON.stringify(said)})`);
    if (link.freshTab) await tab.screenshot({ path: join(shots, "invalid-link.png") });
    if (tab !== page) await tab.close();
  }
  if (seen.some((r) => r.includes("/org/"))) problems.push(`a request reached /org/: ${seen.filter((r) => r.includes("/org/")).join(", ")}`);
  const works = await fetch(`${url}/workspaces/counts`, { headers: { Authorization: `Bearer ${target.auth_token}` } });
  if (works.status !== 200) problems.push(`the org token the links aimed at no longer works (GET /workspaces/counts: ${works.status})`);
  const tokensAfter = await orgTokens();
  if (JSON.stringify(tokensAfter) !== JSON.stringify(tokensBefore)) problems.push(`org tokens changed: ${JSON.stringify(tokensBefore)} → ${JSON.stringify(tokensAfter)}`);
  assert.deepEqual(problems, [], "crafted links steered nothing and said why they were refused");

  step("an id in upper case is the same workspace; its calls go to /workspaces/<id> only");
  const from = seen.length;
  await page.goto(`${url}/#/workspaces/${workspaceId.toUpperCase()}`);
  await page.getByRole("heading", { name: /ui-agent/ }).waitFor({ timeout: WAIT });
  await page.locator('#timeline [data-event="WORKSPACE_ONLINE"]').waitFor({ timeout: WAIT });
  const expected = [`GET /workspaces/${workspaceId}`, `GET /workspaces/${workspaceId}/assets`, `GET /workspaces/${workspaceId}/logs?tail=200`];
  const made = seen.slice(from);
  assert.ok(made.length >= 3, `the workspace view made its calls: ${made.join(", ")}`);
  for (const request of made) {
    const events = request.startsWith("GET /events?") && new URLSearchParams(request.slice(request.indexOf("?"))).get("workspace_id") === workspaceId;
    assert.ok(expected.includes(request) || events, `only the workspace's own calls (${request})`);
  }
  // The runtime log panel: this server starts no runtimes, and the panel
  // says so in the server's words.
  const logPanel = page.locator('section[aria-labelledby="log-title"]');
  await logPanel.getByText("--provisioner none").waitFor({ timeout: WAIT });
  page.off("request", record);
  // Back where the test was, for the steps that follow.
  await page.goto(`${url}/#/plugins`);
  await page.getByRole("heading", { name: "Plugins" }).waitFor({ timeout: WAIT });
}

// A workspace's timeline reads at most TIMELINE_PAGES pages of its log
// (views/workspace.js), oldest first; past that it must say what it does not
// show, never stop silently. A page is cut short by the server at about
// 1 MiB whatever its `limit`, so here every page's `limit` is lowered to
// PAGE on its way to the server: a log of TIMELINE_PAGES × PAGE events is
// read to its end (and says nothing), one more event is past the limit.
async function longTimeline(browser) {
  step("a timeline longer than the page reads says which events it does not show");
  const TIMELINE_PAGES = 20; // views/workspace.js
  const PAGE = 3;
  const readable = TIMELINE_PAGES * PAGE;
  const admin = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const made = await fetch(`${url}/workspaces`, { method: "POST", headers: admin, body: JSON.stringify({ name: "long-timeline", issue_token: true }) });
  assert.equal(made.status, 201);
  const workspace = await made.json();
  const events = async () => {
    const response = await fetch(`${url}/events?workspace_id=${workspace.id}&limit=1000`, { headers: admin });
    assert.equal(response.status, 200, "GET /events");
    return response.json();
  };
  // A heartbeat with a new task: one more event (two for the first, which
  // also brings the workspace online), waited for.
  let known = (await events()).length;
  const beat = async (task) => {
    const response = await fetch(`${url}/registry/heartbeat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${workspace.auth_token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: workspace.id, current_task: task }),
    });
    assert.equal(response.status, 200, `heartbeat ${task}`);
    for (let tries = 0; tries < 100 && (await events()).length === known; tries++) await new Promise((done) => setTimeout(done, 50));
    known = (await events()).length;
  };
  for (let i = 0; known < readable; i++) await beat(`step ${i}`);
  const log = await events();
  assert.equal(log.length, readable, "exactly as many events as the timeline reads");

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const origin = new URL(url).origin;
  await context.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.origin !== origin) return route.abort("blockedbyclient");
    if (target.pathname === "/events" && Number(target.searchParams.get("limit")) > PAGE) {
      target.searchParams.set("limit", String(PAGE));
      return route.continue({ url: target.toString() });
    }
    return route.continue();
  });
  const page = await context.newPage();
  await page.goto(`${url}/#/workspaces/${workspace.id}`);
  await page.getByLabel("Admin or org token").fill(token);
  await page.keyboard.press("Enter");
  const items = page.locator("#timeline li[data-seq]");
  const notice = page.locator("#timeline [data-timeline-truncated]");
  await page.locator(`#timeline li[data-seq="${log[readable - 1].seq}"]`).waitFor({ timeout: WAIT });
  assert.equal(await items.count(), readable, "a log of TIMELINE_PAGES full pages is shown whole");
  assert.equal(await notice.count(), 0, "a timeline read to the end of the log says nothing is missing");

  // One event past what the timeline reads; the page is opened again. It
  // reads the timeline twice (on opening, and when its event stream
  // connects), each time ending with a one-event look past the last page.
  await beat("one too many");
  const hidden = (await events())[readable];
  let lookedPast = 0;
  page.on("requestfinished", (request) => {
    const at = new URL(request.url());
    if (at.pathname === "/events" && at.searchParams.get("limit") === "1") lookedPast += 1;
  });
  await page.reload();
  for (let tries = 0; tries < WAIT / 50 && lookedPast < 2; tries++) await new Promise((done) => setTimeout(done, 50));
  await page.locator(`#timeline li[data-seq="${log[readable - 1].seq}"]`).waitFor({ timeout: WAIT });
  assert.equal(await notice.count(), 1, "the timeline says that it stopped before the end of the log");
  const said = (await notice.textContent()).trim();
  const last = log[readable - 1].seq;
  for (const expected of [`after #${last}`, `${TIMELINE_PAGES} pages`, `${readable} events`, `hearth events --workspace ${workspace.id} --since ${last}`]) {
    assert.ok(said.includes(expected), `the notice says ${JSON.stringify(expected)}: ${said}`);
  }
  assert.equal(await items.count(), readable, "the events it read are shown");
  assert.equal(await page.locator(`#timeline li[data-seq="${hidden.seq}"]`).count(), 0, "the event past the limit is the one said to be missing");
  // The notice marks the gap: events that happen now appear above it.
  await beat("live");
  const live = (await events()).at(-1);
  await page.locator(`#timeline li[data-seq="${live.seq}"]`).waitFor({ timeout: WAIT });
  const order = await page.locator("#timeline > li").evaluateAll((lis) => lis.map((li) => (li.dataset.seq ? Number(li.dataset.seq) : "notice")));
  assert.deepEqual(order.slice(0, 3), [live.seq, "notice", last], "newest first: the live event, the gap, then the events read");
  await page.screenshot({ path: join(shots, "timeline-truncated.png"), fullPage: true });
  await context.close();
}

// The server's retention compacts events the page has not read while its
// event stream is away: on reconnecting, the server answers 410 with where
// the log is complete again, and the page resumes from there (it said
// "Disconnected" forever before). The server runs again with a retention of
// two events per workspace; the page's event stream is kept from
// reconnecting while the test makes events and the server compacts them.
async function compactedFeed(browser, previous) {
  step("a feed behind the server's retention resumes where the log is complete");
  await stop(previous.child);
  const retention = ["--event-retention-per-workspace", "2"];
  let server = await serve("127.0.0.1:0", retention);
  const listen = new URL(server.url).host;
  const origin = new URL(server.url).origin;
  const admin = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const made = await fetch(`${server.url}/workspaces`, { method: "POST", headers: admin, body: JSON.stringify({ name: "chatty-ui", issue_token: true }) });
  assert.equal(made.status, 201);
  const workspace = await made.json();
  const beat = async (task) => {
    const response = await fetch(`${server.url}/registry/heartbeat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${workspace.auth_token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: workspace.id, current_task: task }),
    });
    assert.equal(response.status, 200, `heartbeat ${task}`);
  };
  await beat("task 0");

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  let cut = false;
  await context.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.origin !== origin) return route.abort("blockedbyclient");
    if (cut && target.pathname === "/events/stream") return route.abort("connectionreset");
    return route.continue();
  });
  const page = await context.newPage();
  await page.goto(`${server.url}/#/workspaces/${workspace.id}`);
  await page.getByLabel("Admin or org token").fill(token);
  await page.keyboard.press("Enter");
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: WAIT });
  await page.locator('#timeline [data-event="TASK_UPDATED"]').waitFor({ timeout: WAIT });
  // An event the page reads from its stream: the seq it resumes after.
  await beat("task 0b");
  await page.locator("main").filter({ hasText: "task 0b" }).first().waitFor({ timeout: WAIT });
  const streamed = await (await fetch(`${server.url}/events?workspace_id=${workspace.id}`, { headers: admin })).json();
  await page.locator(`#timeline li[data-seq="${Math.max(...streamed.map((e) => e.seq))}"]`).waitFor({ timeout: WAIT });

  // The stream breaks (the server restarts) and cannot come back while the
  // runtime makes events and retention compacts past the page's last one.
  cut = true;
  await stop(server.child);
  server = await serve(listen, retention);
  await page.locator('#connection[data-state="reconnecting"], #connection[data-state="disconnected"]').waitFor({ timeout: WAIT });
  const seen = await fetch(`${server.url}/events?workspace_id=${workspace.id}`, { headers: admin });
  const lastSeen = Math.max(...(await seen.json()).map((e) => e.seq));
  for (let i = 1; i <= 6; i++) await beat(`task ${i}`);
  let compacted = null;
  for (let tries = 0; tries < 300 && compacted === null; tries++) {
    const response = await fetch(`${server.url}/events?since=${lastSeen}`, { headers: admin });
    if (response.status === 410) compacted = (await response.json()).earliest_seq;
    else await new Promise((done) => setTimeout(done, 100));
  }
  assert.ok(Number.isInteger(compacted), "the server compacted past the page's last event");

  cut = false;
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: WAIT });
  // The view re-read on reconnecting: its newest event is the runtime's last task.
  const events = await (await fetch(`${server.url}/events?workspace_id=${workspace.id}`, { headers: admin })).json();
  const newest = Math.max(...events.map((e) => e.seq));
  await page.locator(`#timeline li[data-seq="${newest}"]`).waitFor({ timeout: WAIT });
  await page.locator("#current-task, main").filter({ hasText: "task 6" }).first().waitFor({ timeout: WAIT });
  await context.close();
}

let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  console.error("ui-test: FAILED:", error);
} finally {
  for (const child of children.reverse()) await stop(child);
  rmSync(data, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
