// Hearth dashboard: a vanilla-JS module over the JSON API, served from the
// binary. The operator token lives in this tab's sessionStorage only and is
// sent as `Authorization: Bearer` (never in a URL or a cookie). Live updates
// come from `GET /events/stream`, read with fetch() so the header can be
// sent, resumed with `Last-Event-ID` after a break.
// Every text is set with textContent (never parsed as HTML). Every API
// path is built by `path` (one encoder), and every id or name taken from
// the URL fragment is checked before a view may use it (see parseRoute).

const TOKEN_KEY = "hearth.token";
const STATUSES = ["provisioning", "online", "degraded", "offline", "failed", "paused", "hibernated", "removed"];
const PAGE_SIZES = [25, 50, 100, 200];
const STREAM_SILENCE_MS = 45000; // the server sends a keep-alive every 15 s
// The protocol this page speaks (hearth_api::PROTOCOL_VERSION): it is served
// by the server it talks to, so they always agree.
const PROTOCOL = { "X-Hearth-Protocol": "2" };

// --- small helpers -----------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// replaceChildren without the null/false children that mean "nothing here".
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function age(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

// An age that keeps itself current (see the ticker below).
function ageCell(iso) {
  return h("time", { datetime: iso || "", "data-age": iso || "", title: iso || "no heartbeat yet" }, age(iso));
}

setInterval(() => {
  for (const el of document.querySelectorAll("[data-age]")) {
    if (el.dataset.age) el.textContent = age(el.dataset.age);
  }
}, 1000);

const money = (cents) => `$${Math.floor(cents / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;
const short = (digest) => (digest ? String(digest).replace(/^sha256:/, "").slice(0, 12) : "–");
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, status);
}

function conditionOf(workspace, type) {
  return (workspace.conditions || []).find((c) => c.type === type);
}

// A condition at a glance: a mark and a word, never colour alone.
function conditionCell(workspace, type, words) {
  const c = conditionOf(workspace, type);
  if (!c) return h("span", { class: "cond none", title: `${type}: not reported yet` }, "– not yet");
  const ok = c.status === "True";
  return h(
    "span",
    { class: `cond ${ok ? "ok" : "bad"}`, title: `${type}=${c.status} (${c.reason}): ${c.message}`, "data-condition": `${type}=${c.status}` },
    ok ? `✓ ${words[0]}` : `✗ ${c.reason || words[1]}`,
  );
}

function digestCode(digest) {
  return h("code", { title: digest || "" }, short(digest));
}

// --- the API -------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY);

// The one encoder of API paths: a tagged template whose every `${value}` is
// exactly one path segment, percent-encoded with encodeURIComponent, so no
// value can add a segment, a `..`, a query or a fragment (`..\org`, `x#`,
// `x?`, `a/b` all stay inside their segment). `.`, `..` (which a URL parser
// resolves even as `%2E%2E`) and the empty string are refused: they cannot
// be one segment. api() and the event feed take nothing else (apiUrl checks),
// and a test in ui.rs refuses a path that is not built here.
//   path`/workspaces/${id}/pause`
class ApiPath {
  constructor(text) {
    this.text = text;
    Object.freeze(this);
  }
}

function pathSegment(value) {
  const text = String(value);
  if (text === "" || text === "." || text === "..") throw new TypeError(`${JSON.stringify(text)} cannot be a segment of an API path`);
  return encodeURIComponent(text);
}

function path(literals, ...values) {
  let text = literals[0];
  values.forEach((value, i) => {
    text += pathSegment(value) + literals[i + 1];
  });
  return new ApiPath(text);
}

// The URL of an API call on this origin: a path from `path` and a query
// object, each value encoded by URLSearchParams (empty values left out).
function apiUrl(apiPath, query) {
  if (!(apiPath instanceof ApiPath)) throw new TypeError("an API path must be built with path`…`");
  const url = new URL(apiPath.text, location.origin);
  // Nothing was resolved away: the path is exactly what was built.
  if (url.origin !== location.origin || url.pathname !== apiPath.text) throw new TypeError(`${JSON.stringify(apiPath.text)} is not a plain API path`);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

async function api(method, apiPath, query) {
  const response = await fetch(apiUrl(apiPath, query), {
    method,
    headers: { ...PROTOCOL, Authorization: `Bearer ${token}`, Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    // The API's own sentence, verbatim.
    const message = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    if (response.status === 401) signOut(message);
    throw new ApiError(response.status, message, body);
  }
  return { body, next: response.headers.get("x-next-cursor") };
}

// --- the live event feed ---------------------------------------------------------

// Reads `text/event-stream` from fetch(): EventSource cannot send a header.
class EventFeed {
  constructor() {
    this.lastId = null;
    this.listeners = new Set();
    this.stopped = true;
    this.controller = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.generation = (this.generation || 0) + 1;
    this.run(this.generation);
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  // A loop of an earlier start (stopped, then started again while it
  // slept) ends instead of running beside the new one.
  ended(generation) {
    return this.stopped || generation !== this.generation;
  }

  async run(generation) {
    let attempt = 0;
    while (!this.ended(generation)) {
      this.controller = new AbortController();
      try {
        const headers = { ...PROTOCOL, Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
        if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
        const response = await fetch(apiUrl(path`/events/stream`), {
          headers,
          signal: this.controller.signal,
          cache: "no-store",
          credentials: "omit",
        });
        if (response.status === 401) {
          signOut("the server no longer accepts this token");
          return;
        }
        if (response.status === 410 && this.lastId !== null) {
          // The server's retention removed events after the last one we had:
          // resume where its log is complete again (every view re-reads on
          // "connected", so nothing shown is stale).
          const body = await response.json().catch(() => null);
          if (body && body.code === "events_compacted" && Number.isInteger(body.earliest_seq) && body.earliest_seq - 1 > this.lastId) {
            this.lastId = body.earliest_seq - 1;
            continue;
          }
        }
        if (!response.ok || !response.body) {
          let message = `HTTP ${response.status}`;
          try {
            message = (await response.json()).error || message;
          } catch {
            // not a JSON error body; keep the status line
          }
          throw new Error(message);
        }
        attempt = 0;
        setConnection("live", "Live");
        this.emit({ type: "connected" });
        await this.read(response.body.getReader());
        throw new Error("the event stream ended");
      } catch (error) {
        if (this.ended(generation)) return;
        attempt += 1;
        const delay = Math.round(Math.min(30000, 500 * 2 ** Math.min(attempt, 6)) * (0.6 + Math.random() * 0.4));
        const why = error && error.message ? error.message : String(error);
        for (let left = Math.ceil(delay / 1000); left > 0 && !this.ended(generation); left--) {
          setConnection(attempt > 3 ? "disconnected" : "reconnecting", `Disconnected (${why}); reconnecting in ${left}s`);
          await sleep(1000);
        }
        if (!this.ended(generation)) setConnection("reconnecting", "Reconnecting…");
      }
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    let frame = { id: null, event: null, data: [] };
    for (;;) {
      let timer;
      const silence = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the event stream went silent")), STREAM_SILENCE_MS);
      });
      let chunk;
      try {
        chunk = await Promise.race([reader.read(), silence]);
      } finally {
        clearTimeout(timer);
      }
      if (chunk.done) return;
      buffer += decoder.decode(chunk.value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (frame.data.length) this.dispatch(frame);
          frame = { id: null, event: null, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") frame.data.push(value);
        else if (field === "id") frame.id = value;
        else if (field === "event") frame.event = value;
      }
    }
  }

  dispatch(frame) {
    let event;
    try {
      event = JSON.parse(frame.data.join("\n"));
    } catch {
      console.warn("hearth: an event frame that is not JSON", frame);
      return;
    }
    if (frame.id !== null && /^\d+$/.test(frame.id)) this.lastId = Number(frame.id);
    this.emit({ type: "event", event });
  }

  emit(message) {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch (error) {
        console.error("hearth: a view failed to handle", message, error);
      }
    }
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const feed = new EventFeed();

function setConnection(state, text) {
  const el = document.getElementById("connection");
  el.hidden = false;
  el.className = `connection ${state}`;
  el.dataset.state = state;
  el.textContent = text;
}

// Runs `task` at most once per `ms`, the last call winning.
function throttle(task, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) {
      again = true;
      return;
    }
    task();
    timer = setTimeout(function tick() {
      timer = null;
      if (again) {
        again = false;
        task();
        timer = setTimeout(tick, ms);
      }
    }, ms);
  };
}

// --- sign-in -------------------------------------------------------------------------

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  feed.stop();
  showSignIn(message);
}

function showSignIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("connection").hidden = true;
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = message ? h("p", { class: "error", role: "alert" }, message) : null;
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Hearth"),
    error,
    h("label", { for: "token" }, "Admin or org token"),
    input,
    h("p", { class: "muted" }, "Kept in this tab only (sessionStorage) and sent as a bearer header. The admin token of a local server is in ./hearth-data/admin-token."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    token = input.value.trim();
    try {
      await api("GET", path`/workspaces/counts`);
    } catch (err) {
      token = null;
      showSignIn(err.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    startSession();
  });
  const main = document.getElementById("main");
  fill(main, form);
  input.focus();
}

function startSession() {
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  setConnection("reconnecting", "Connecting…");
  feed.start();
  route();
}

// --- routing ---------------------------------------------------------------------------

let currentView = null;

// What a route parameter may be, checked before any view uses it.
// A workspace id is a UUID in its hyphenated 8-4-4-4-12 form, hex digits in
// any case (the server parses either), used in lower case (the form the API
// answers with, so events compare equal).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// hearth_core::manifest::PLUGIN_NAME_PATTERN.
const PLUGIN_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
// hearth_core::validate::name (template and workspace names): not only white
// space, at most 255 characters, no control character (Unicode Cc).
const MAX_NAME_CHARS = 255;
const isName = (text) => !/^\p{White_Space}*$/u.test(text) && [...text].length <= MAX_NAME_CHARS && !/\p{Cc}/u.test(text);
// `.` and `..` are valid template names, but no URL path can carry them
// (a URL parser resolves them, encoded or not): such a template is linked
// and fetched by its id.
const addressable = (name) => name !== "." && name !== "..";

// A link inside the page: each segment percent-encoded, as parseRoute reads it.
function link(...segments) {
  return `#/${segments.map((segment) => encodeURIComponent(String(segment))).join("/")}`;
}

// The route in the URL fragment, checked. The fragment is split on `/`
// first and each segment decoded on its own, so an encoded `/`, `\`, `#` or
// `?` stays inside its segment; then each parameter must be what the API
// takes there. Anything else is an "invalid" route, whose view sends no
// request. A first segment the page does not know shows the fleet (as `#/`
// and the skip link `#main` do).
function parseRoute(hash) {
  const raw = hash.replace(/^#/, "").split("/").filter(Boolean);
  let parts;
  try {
    parts = raw.map((segment) => decodeURIComponent(segment));
  } catch {
    return { section: null, view: "invalid", title: "Not a valid link", message: `This is not a valid link: ${shown(hash)} is not well-formed percent-encoding.` };
  }
  const [section, param, ...rest] = parts;
  if (section !== "workspaces" && section !== "templates" && section !== "plugins") return { section, view: "fleet" };
  if (rest.length) return { section, view: "invalid", title: "Not found", message: `There is no page at ${shown(hash)}.` };
  if (section === "workspaces") {
    if (param === undefined) return { section, view: "fleet" };
    if (!UUID.test(param)) {
      return {
        section,
        view: "invalid",
        title: "Workspace not found",
        message: `${shown(param)} is not a valid workspace id: a workspace id is a UUID (8-4-4-4-12 hexadecimal digits).`,
      };
    }
    return { section, view: "workspace", param: param.toLowerCase() };
  }
  if (section === "templates") {
    if (param === undefined) return { section, view: "templates" };
    if (!isName(param) || !addressable(param)) {
      return {
        section,
        view: "invalid",
        title: "Template not found",
        message: `${shown(param)} is not a valid template name or id: a name has 1 to ${MAX_NAME_CHARS} characters, not all blank, no control characters, and is not "." or ".." (open such a template from the list).`,
      };
    }
    return { section, view: "template", param };
  }
  if (param === undefined) return { section, view: "plugins" };
  if (!PLUGIN_NAME.test(param)) {
    return {
      section,
      view: "invalid",
      title: "Plugin not found",
      message: `${shown(param)} is not a valid plugin name: it must match ${PLUGIN_NAME.source} (lowercase letters, digits, ".", "_" and "-").`,
    };
  }
  return { section, view: "plugin", param };
}

// A value from the URL, quoted for a message (control characters visible, long ones cut).
function shown(text) {
  const chars = [...text];
  const cut = chars.length > 120 ? `${chars.slice(0, 120).join("")}…` : text;
  return `“${cut.replace(/\p{Cc}/gu, (c) => `\\u${c.codePointAt(0).toString(16).padStart(4, "0")}`)}”`;
}

function route() {
  if (!token) return showSignIn();
  if (currentView && currentView.dispose) currentView.dispose();
  const where = parseRoute(location.hash);
  for (const navLink of document.querySelectorAll("#nav a")) {
    const target = navLink.getAttribute("href").replace(/^#\/?/, "");
    const active = target === "" ? where.section === undefined || where.section === "workspaces" : where.section === target;
    if (active) navLink.setAttribute("aria-current", "page");
    else navLink.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  fill(main);
  if (where.view === "invalid") currentView = invalidView(main, where);
  else if (where.view === "workspace") currentView = workspaceView(main, where.param);
  else if (where.view === "templates") currentView = templatesView(main);
  else if (where.view === "template") currentView = templateView(main, where.param);
  else if (where.view === "plugins") currentView = pluginsView(main);
  else if (where.view === "plugin") currentView = pluginView(main, where.param);
  else currentView = fleetView(main);
}

// A link whose id or name the API could not take: said, and nothing sent.
function invalidView(main, where) {
  main.append(
    h("p", {}, h("a", { href: "#/" }, "← Fleet")),
    h("h1", {}, where.title),
    h("p", { class: "error", role: "alert", "data-invalid-link": "" }, where.message, " Nothing was sent to the server."),
  );
  focusHeading(main);
  return null;
}

function focusHeading(main) {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function failure(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// --- fleet -----------------------------------------------------------------------------------

const fleetState = { status: "", q: "", limit: 50, cursors: [null] };

function fleetView(main) {
  const state = fleetState;
  const counts = h("ul", { class: "counts", "aria-label": "Workspaces by status" });
  const search = h("input", { type: "search", id: "search", value: state.q, placeholder: "name contains…" });
  const statusSelect = h(
    "select",
    { id: "status-filter" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s)),
  );
  const sizeSelect = h("select", { id: "page-size" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.limit }, n)));
  const tbody = h("tbody");
  const message = h("div", { "aria-live": "polite" });
  const pageLabel = h("span", { class: "muted" });
  const previous = h("button", { type: "button" }, "← Previous");
  const next = h("button", { type: "button" }, "Next →");
  let nextCursor = null;
  let timing = h("span", { class: "muted", id: "page-timing" });

  main.append(
    h("h1", {}, "Fleet"),
    counts,
    h(
      "div",
      { class: "filters", role: "search" },
      h("label", { for: "search" }, "Search by name", search),
      h("label", { for: "status-filter" }, "Status", statusSelect),
      h("label", { for: "page-size" }, "Per page", sizeSelect),
    ),
    message,
    h(
      "table",
      { id: "fleet" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Status", "Current task", "Last heartbeat", "Assets", "Plugins"].map((t) => h("th", { scope: "col" }, t)),
          h("th", { scope: "col", class: "num" }, "Monthly spend"),
        ),
      ),
      tbody,
    ),
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, pageLabel, next, timing),
  );

  const setFilter = (change) => {
    Object.assign(state, change);
    state.cursors = [null];
    load();
  };
  let searchTimer = null;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => setFilter({ q: search.value.trim() }), 250);
  });
  statusSelect.addEventListener("change", () => setFilter({ status: statusSelect.value }));
  sizeSelect.addEventListener("change", () => setFilter({ limit: Number(sizeSelect.value) }));
  previous.addEventListener("click", () => {
    if (state.cursors.length > 1) {
      state.cursors.pop();
      load();
    }
  });
  next.addEventListener("click", () => {
    if (nextCursor) {
      state.cursors.push(nextCursor);
      load();
    }
  });

  function renderCounts(body) {
    const all = h("button", { type: "button", "aria-pressed": state.status === "" ? "true" : "false" }, `All ${body.total}`);
    all.addEventListener("click", () => {
      statusSelect.value = "";
      setFilter({ status: "" });
    });
    const items = [h("li", {}, all)];
    for (const status of STATUSES) {
      const count = body.by_status[status] || 0;
      if (!count && status !== "online") continue;
      const button = h(
        "button",
        { type: "button", "aria-pressed": state.status === status ? "true" : "false", "data-count": status, "aria-label": `${status}: ${count}` },
        statusBadge(status),
        ` ${count}`,
      );
      button.addEventListener("click", () => {
        statusSelect.value = status;
        setFilter({ status });
      });
      items.push(h("li", {}, button));
    }
    fill(counts, ...items);
  }

  function row(w) {
    return h(
      "tr",
      { "data-id": w.id, "data-name": w.name, "data-status": w.status },
      h("td", {}, h("a", { href: link("workspaces", w.id) }, w.name)),
      h("td", {}, statusBadge(w.status)),
      h("td", {}, w.current_task || h("span", { class: "muted" }, "–")),
      h("td", {}, ageCell(w.last_heartbeat_at)),
      h("td", {}, conditionCell(w, "AssetsDelivered", ["delivered", "pending"])),
      h("td", {}, conditionCell(w, "PluginsInstalled", ["installed", "pending"])),
      h("td", { class: "num" }, money(w.monthly_spend)),
    );
  }

  let generation = 0;
  async function load() {
    const mine = ++generation;
    const started = performance.now();
    const cursor = state.cursors[state.cursors.length - 1];
    const wantsRemoved = state.status === "removed";
    try {
      const [page, countBody] = await Promise.all([
        api("GET", path`/workspaces`, { limit: state.limit, cursor, status: state.status, q: state.q, include_removed: wantsRemoved ? "true" : undefined }),
        api("GET", path`/workspaces/counts`),
      ]);
      if (mine !== generation) return;
      renderCounts(countBody.body);
      nextCursor = page.next;
      fill(tbody, ...page.body.map(row));
      fill(message, 
        page.body.length ? "" : h("p", { class: "muted" }, state.q || state.status ? "No workspace matches." : "No workspaces yet. Create one: hearth workspace create NAME --template T"),
      );
      previous.disabled = state.cursors.length <= 1;
      next.disabled = !nextCursor;
      pageLabel.textContent = `page ${state.cursors.length}`;
      const ms = Math.round(performance.now() - started);
      timing.textContent = `loaded in ${ms} ms`;
      timing.dataset.ms = String(ms);
      main.dataset.loaded = String(mine);
    } catch (error) {
      if (mine === generation) fill(message, failure(error));
    }
  }

  // Any event may change a row, a count or the page's membership: reload
  // the page (at most twice a second; a page is two indexed queries).
  const refresh = throttle(load, 500);
  const unsubscribe = feed.subscribe((m) => {
    if (m.type === "connected" || m.type === "event") refresh();
  });
  load().then(() => focusHeading(main));
  return { dispose: unsubscribe };
}

// --- one workspace ------------------------------------------------------------------------------

const ACTIONS = [
  { action: "pause", label: "Pause", explain: "Its runtime stops working until resumed." },
  { action: "resume", label: "Resume", explain: "Its runtime starts working again." },
  { action: "restart", label: "Restart", explain: "Its runtime is restarted." },
  { action: "hibernate", label: "Hibernate", explain: "Its runtime is stopped until resumed." },
  { action: "delete", label: "Delete", explain: "It is removed with its descendants. This cannot be undone." },
];

function confirmAction(text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

function workspaceView(main, id) {
  const heading = h("h1", {}, "Workspace");
  const actionResult = h("div", { id: "action-result", "aria-live": "assertive" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Operator actions" });
  const overview = h("section", { "aria-labelledby": "overview-title" });
  const conditions = h("section", { "aria-labelledby": "conditions-title" });
  const plugins = h("section", { "aria-labelledby": "plugins-title" });
  const assets = h("section", { "aria-labelledby": "assets-title" });
  const runtime = h("section", { "aria-labelledby": "runtime-title" });
  const card = h("section", { "aria-labelledby": "card-title" });
  const timelineList = h("ol", { class: "timeline", id: "timeline", reversed: true });
  const timeline = h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Lifecycle timeline"), timelineList);
  main.append(h("p", {}, h("a", { href: "#/" }, "← Fleet")), heading, actions, actionResult, h("div", { class: "grid" }, overview, conditions), plugins, assets, h("div", { class: "grid" }, runtime, card), timeline);
  let workspace = null;
  let lastSeq = 0;

  for (const { action, label, explain } of ACTIONS) {
    const button = h("button", { type: "button", "data-action": action, class: action === "delete" ? "danger" : null }, label);
    button.addEventListener("click", async () => {
      const name = workspace ? workspace.name : id;
      if (!(await confirmAction(`${label} workspace ${name}? ${explain}`, `${label} ${name}`))) {
        button.focus();
        return;
      }
      fill(actionResult, h("p", { class: "muted" }, `${label}…`));
      try {
        const answer = action === "delete" ? await api("DELETE", path`/workspaces/${id}`) : await api("POST", path`/workspaces/${id}/${action}`);
        fill(actionResult, h("p", { class: "notice", role: "status" }, `${label}: the workspace is now ${answer.body.status}.`));
        await loadWorkspace();
      } catch (error) {
        // The API's refusal, word for word.
        fill(actionResult, h("p", { class: "error", role: "alert", "data-refusal": error.status }, error.message));
      }
      button.focus();
    });
    actions.append(button);
  }

  function fields(pairs) {
    return h("dl", { class: "fields" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? h("span", { class: "muted" }, "–") : v)]));
  }

  function render(w) {
    fill(heading, w.name, " ", statusBadge(w.status));
    document.title = `${w.name} (${w.status}) · Hearth`;
    fill(overview, 
      h("h2", { id: "overview-title" }, "Overview"),
      fields([
        ["id", h("code", {}, w.id)],
        ["status", [statusBadge(w.status), " since ", ageCell(w.status_changed_at)]],
        ["template", w.template ? (addressable(w.template) ? h("a", { href: link("templates", w.template) }, w.template) : w.template) : null],
        ["role", w.role],
        ["tier", w.tier],
        ["runtime", w.runtime],
        ["model", w.model],
        ["url", w.url],
        ["current task", w.current_task],
        ["last heartbeat", ageCell(w.last_heartbeat_at)],
        ["monthly spend", money(w.monthly_spend) + (w.budget_limit !== null ? ` of ${money(w.budget_limit)}` : "")],
        ["created", w.created_at],
      ]),
    );
    fill(conditions, 
      h("h2", { id: "conditions-title" }, "Conditions"),
      h(
        "table",
        { id: "conditions" },
        h("thead", {}, h("tr", {}, ["Type", "Status", "Reason", "Message", "Since"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          w.conditions.map((c) =>
            h(
              "tr",
              { "data-condition": c.type, "data-condition-status": c.status },
              h("td", {}, c.type),
              h("td", {}, h("span", { class: `cond ${c.status === "True" ? "ok" : "bad"}` }, c.status === "True" ? "✓ True" : `✗ ${c.status}`)),
              h("td", {}, c.reason),
              h("td", {}, c.message),
              h("td", {}, ageCell(c.last_transition_time)),
            ),
          ),
        ),
      ),
    );
    const installed = new Map(w.installed_plugins.map((p) => [p.name, p.sha256]));
    const names = [...new Set([...w.desired_plugins.map((p) => p.name), ...installed.keys()])];
    fill(plugins, 
      h("h2", { id: "plugins-title" }, "Plugins: desired and installed"),
      names.length === 0
        ? h("p", { class: "muted" }, "No plugins desired or installed.")
        : h(
            "table",
            { id: "plugins" },
            h("thead", {}, h("tr", {}, ["Plugin", "Desired version", "Desired sha256", "Installed sha256", "State"].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              names.map((name) => {
                const desired = w.desired_plugins.find((p) => p.name === name);
                const has = installed.has(name);
                const sha = installed.get(name);
                let stateWord;
                if (!desired) stateWord = "installed, not desired";
                else if (!desired.sha256) stateWord = "not in the registry";
                else if (!has) stateWord = "not installed";
                else if (!sha) stateWord = "installed (unverified)";
                else stateWord = sha === desired.sha256 ? "installed" : "other content";
                const ok = stateWord === "installed";
                return h(
                  "tr",
                  { "data-plugin": name, "data-plugin-state": stateWord },
                  h("td", {}, h("a", { href: link("plugins", name) }, name)),
                  h("td", {}, desired && desired.version ? desired.version : "–"),
                  h("td", {}, digestCode(desired && desired.sha256)),
                  h("td", {}, digestCode(sha)),
                  h("td", {}, h("span", { class: `cond ${ok ? "ok" : "bad"}` }, `${ok ? "✓" : "✗"} ${stateWord}`)),
                );
              }),
            ),
          ),
    );
    fill(runtime, 
      h("h2", { id: "runtime-title" }, "Runtime"),
      fields([
        ["active tasks", w.active_tasks],
        ["max concurrent tasks", w.max_concurrent_tasks],
        ["uptime", `${w.uptime_seconds}s`],
        ["error rate", Number(w.last_error_rate).toFixed(2)],
        ["sample error", w.last_sample_error],
        ["runtime state", w.runtime_state],
        ["external", w.external ? "yes" : "no"],
      ]),
      w.runtime_metadata ? h("pre", { "aria-label": "Runtime metadata" }, JSON.stringify(w.runtime_metadata, null, 2)) : null,
    );
    fill(card, 
      h("h2", { id: "card-title" }, "Agent card"),
      w.agent_card ? h("pre", { "aria-label": "Agent card" }, JSON.stringify(w.agent_card, null, 2)) : h("p", { class: "muted" }, "No agent card (the runtime has not registered one)."),
    );
    for (const button of actions.querySelectorAll("button")) button.disabled = w.status === "removed";
  }

  async function loadAssets() {
    const title = h("h2", { id: "assets-title" }, "Assets");
    if (!workspace || !workspace.template) {
      fill(assets, title, h("p", { class: "muted" }, "No template, so no assets."));
      return;
    }
    try {
      const { body } = await api("GET", path`/workspaces/${id}/assets`);
      const delivered = conditionOf(workspace, "AssetsDelivered");
      fill(assets, 
        title,
        h("p", {}, "Digest ", digestCode(body.digest), " · ", delivered ? `AssetsDelivered=${delivered.status}` : "not reported yet"),
        fileTree(body.files),
      );
    } catch (error) {
      fill(assets, title, failure(error));
    }
  }

  function timelineItem(e) {
    const payload = e.payload && Object.keys(e.payload).length ? JSON.stringify(e.payload) : "";
    return h("li", { "data-seq": e.seq, "data-event": e.event }, h("span", {}, ageCell(e.timestamp)), h("code", {}, e.event), h("span", { class: "mono muted" }, payload));
  }

  // The workspace's kept events, oldest first. A page holds at most 1000
  // events and about 1 MiB, so a short page does not mean the end: an empty
  // one does. If retention removes events while we read, we go on from
  // where the log is complete (410 events_compacted).
  async function loadTimeline() {
    const all = [];
    let since = 0;
    for (let i = 0; i < 20; i++) {
      let body;
      try {
        ({ body } = await api("GET", path`/events`, { workspace_id: id, since, limit: 1000 }));
      } catch (error) {
        const earliest = error instanceof ApiError && error.body && error.body.code === "events_compacted" ? error.body.earliest_seq : null;
        if (!Number.isInteger(earliest) || earliest - 1 <= since) throw error;
        since = earliest - 1;
        continue;
      }
      if (body.length === 0) break;
      all.push(...body);
      since = body[body.length - 1].seq;
    }
    lastSeq = all.length ? all[all.length - 1].seq : lastSeq;
    fill(timelineList, ...all.reverse().map(timelineItem));
  }

  async function loadWorkspace() {
    try {
      workspace = (await api("GET", path`/workspaces/${id}`)).body;
      render(workspace);
      main.dataset.status = workspace.status;
    } catch (error) {
      fill(heading, "Workspace");
      fill(overview, failure(error));
    }
  }

  const refresh = throttle(async () => {
    await loadWorkspace();
    await loadAssets();
  }, 400);

  const unsubscribe = feed.subscribe(async (m) => {
    if (m.type === "connected") {
      refresh();
      loadTimeline().catch((error) => fill(timelineList, h("li", {}, failure(error))));
      return;
    }
    const e = m.event;
    if (e.workspace_id !== id) return;
    if (e.seq > lastSeq) {
      lastSeq = e.seq;
      timelineList.prepend(timelineItem(e));
    }
    refresh();
  });

  (async () => {
    await loadWorkspace();
    focusHeading(main);
    await loadAssets();
    await loadTimeline().catch((error) => fill(timelineList, h("li", {}, failure(error))));
  })();
  return { dispose: unsubscribe };
}

// --- templates and plugins -------------------------------------------------------------------------

// Paths as a nested list: directories, then files with size and sha256.
function fileTree(files) {
  const root = { dirs: new Map(), files: [] };
  for (const file of files) {
    const parts = file.path.split("/");
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push({ ...file, name: parts[parts.length - 1] });
  }
  const render = (node) =>
    h(
      "ul",
      {},
      [...node.dirs.entries()].map(([name, child]) => h("li", {}, h("span", {}, `${name}/`), render(child))),
      node.files.map((f) =>
        h("li", { class: "file", "data-path": f.path }, h("code", {}, f.name), h("span", { class: "muted" }, bytes(f.size)), h("code", { title: `sha256 ${f.sha256}` }, `sha256 ${short(f.sha256)}`)),
      ),
    );
  const tree = render(root);
  tree.className = "tree";
  tree.setAttribute("aria-label", "Files");
  return tree;
}

function usedBy(title, params) {
  const section = h("section", { "aria-label": title }, h("h2", {}, title), h("p", { class: "muted" }, "Loading…"));
  api("GET", path`/workspaces`, { ...params, limit: 100 })
    .then(({ body, next }) => {
      fill(section, 
        h("h2", {}, title),
        body.length === 0
          ? h("p", { class: "muted" }, "No workspace.")
          : h("ul", { class: "used-by" }, body.map((w) => h("li", {}, h("a", { href: link("workspaces", w.id) }, w.name), " ", statusBadge(w.status)))),
        next ? h("p", { class: "muted" }, "…and more (the first 100 are shown).") : null,
      );
    })
    .catch((error) => fill(section, h("h2", {}, title), failure(error)));
  return section;
}

function templatesView(main) {
  const body = h("tbody");
  main.append(
    h("h1", {}, "Templates"),
    h("table", { id: "templates" }, h("thead", {}, h("tr", {}, ["Name", "Runtime", "Model", "Plugins", "Files", "Assets digest", "Updated"].map((t) => h("th", { scope: "col" }, t)))), body),
  );
  const more = h("button", { type: "button", hidden: true }, "Load more");
  main.append(h("div", { class: "pager" }, more));
  let cursor = null;
  async function load() {
    try {
      const page = await api("GET", path`/templates`, { limit: 100, cursor });
      for (const t of page.body) {
        body.append(
          h(
            "tr",
            { "data-template": t.name },
            h("td", {}, h("a", { href: link("templates", addressable(t.name) ? t.name : t.id) }, t.name)),
            h("td", {}, t.runtime || "–"),
            h("td", {}, t.model || "–"),
            h("td", {}, t.plugins.length ? t.plugins.map((p, i) => [i ? ", " : "", h("a", { href: link("plugins", p) }, p)]) : "–"),
            h("td", { class: "num" }, t.files.length),
            h("td", {}, digestCode(t.assets_digest)),
            h("td", {}, ageCell(t.updated_at)),
          ),
        );
      }
      cursor = page.next;
      more.hidden = !cursor;
      if (!body.children.length) main.append(h("p", { class: "muted" }, "No templates. Push one: hearth template push DIR"));
    } catch (error) {
      main.append(failure(error));
    }
  }
  more.addEventListener("click", load);
  load().then(() => focusHeading(main));
  return null;
}

function templateView(main, name) {
  main.append(h("p", {}, h("a", { href: "#/templates" }, "← Templates")), h("h1", {}, `Template ${name}`));
  const content = h("div");
  main.append(content);
  api("GET", path`/templates/${name}`)
    .then(({ body: t }) => {
      const total = t.files.reduce((sum, f) => sum + f.size, 0);
      content.append(
        h(
          "dl",
          { class: "fields" },
          h("dt", {}, "id"),
          h("dd", {}, h("code", {}, t.id)),
          h("dt", {}, "runtime"),
          h("dd", {}, t.runtime || "–"),
          h("dt", {}, "model"),
          h("dd", {}, t.model || "–"),
          h("dt", {}, "plugins"),
          h("dd", {}, t.plugins.length ? t.plugins.map((p, i) => [i ? ", " : "", h("a", { href: link("plugins", p) }, p)]) : "–"),
          h("dt", {}, "assets digest"),
          h("dd", {}, h("code", {}, t.assets_digest)),
        ),
        h("h2", {}, `Contents (${t.files.length} files, ${bytes(total)})`),
        fileTree(t.files),
        usedBy("Workspaces created from it", { template: t.name }),
      );
    })
    .catch((error) => content.append(failure(error)))
    .finally(() => focusHeading(main));
  return null;
}

function pluginsView(main) {
  const body = h("tbody");
  main.append(
    h("h1", {}, "Plugins"),
    h("table", { id: "plugin-list" }, h("thead", {}, h("tr", {}, ["Name", "Version", "Description", "Content sha256"].map((t) => h("th", { scope: "col" }, t)))), body),
  );
  api("GET", path`/plugins`)
    .then(({ body: plugins }) => {
      for (const p of plugins) {
        body.append(
          h(
            "tr",
            { "data-plugin": p.name },
            h("td", {}, h("a", { href: link("plugins", p.name) }, p.name)),
            h("td", {}, p.version),
            h("td", {}, p.description || "–"),
            h("td", {}, digestCode(p.sha256)),
          ),
        );
      }
      if (!plugins.length) main.append(h("p", { class: "muted" }, "No plugins. Push one: hearth plugin push DIR"));
    })
    .catch((error) => main.append(failure(error)))
    .finally(() => focusHeading(main));
  return null;
}

function pluginView(main, name) {
  main.append(h("p", {}, h("a", { href: "#/plugins" }, "← Plugins")), h("h1", {}, `Plugin ${name}`));
  const content = h("div");
  main.append(content);
  api("GET", path`/plugins/${name}`)
    .then(({ body: p }) => {
      const total = p.files.reduce((sum, f) => sum + f.size, 0);
      content.append(
        h(
          "dl",
          { class: "fields" },
          h("dt", {}, "version"),
          h("dd", {}, p.version),
          h("dt", {}, "description"),
          h("dd", {}, p.description || "–"),
          h("dt", {}, "content sha256"),
          h("dd", {}, h("code", {}, p.sha256)),
        ),
        h("h2", {}, `Contents (${p.files.length} files, ${bytes(total)})`),
        fileTree(p.files),
        usedBy("Workspaces that want it", { plugin: p.name }),
      );
    })
    .catch((error) => content.append(failure(error)))
    .finally(() => focusHeading(main));
  return null;
}

// --- start -----------------------------------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
if (token) startSession();
else showSignIn();
