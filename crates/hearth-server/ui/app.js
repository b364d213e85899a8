// Hearth dashboard: vanilla-JS modules over the JSON API, served from the
// binary (no build step). This file is the session and the routing: the
// operator token lives in this tab's sessionStorage only and is sent as
// `Authorization: Bearer` (never in a URL or a cookie); the URL fragment
// picks the view. The other modules:
//   api.js              api(), ApiError, the path encoder `path`, apiUrl
//   feed.js             the live event feed (`GET /events/stream`)
//   dom.js              h, fill, ages, badges, file trees
//   links.js            parseRoute (the fragment, checked) and link
//   views/fleet.js      the fleet
//   views/workspace.js  one workspace: overview, plugins, assets, timeline
//   views/bundles.js    templates and plugins: lists and one detail view
//   views/orgs.js       the admin's orgs, their quotas and use
// Every text is set with textContent (never parsed as HTML). Every API
// path is built by `path` (one encoder), and every id or name taken from
// the URL fragment is checked before a view may use it (see parseRoute).

import { api, getToken, onUnauthorized, path, setIdentity, setOrgFilter, setToken } from "./api.js";
import { feed, setConnection } from "./feed.js";
import { fill, focusHeading, h } from "./dom.js";
import { parseRoute } from "./links.js";
import { fleetView } from "./views/fleet.js";
import { workspaceView } from "./views/workspace.js";
import { bundleView, pluginsView, templatesView } from "./views/bundles.js";
import { orgsView } from "./views/orgs.js";

const TOKEN_KEY = "hearth.token";
const ORG_KEY = "hearth.org";

// --- sign-in -------------------------------------------------------------------------

function signOut(message) {
  setToken(null);
  setIdentity(null);
  setOrgFilter(null);
  sessionStorage.removeItem(ORG_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  feed.stop();
  showSignIn(message);
}

function showSignIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("whoami").hidden = true;
  document.getElementById("org-switch-label").hidden = true;
  document.getElementById("nav-orgs").hidden = true;
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
    setToken(input.value.trim());
    try {
      await api("GET", path`/whoami`);
    } catch (err) {
      setToken(null);
      showSignIn(err.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, getToken());
    startSession();
  });
  const main = document.getElementById("main");
  fill(main, form);
  input.focus();
}

// The signed-in role, shown in the header; the views read it (mayAct) to
// hide what it may not do. Routing waits for it.
async function startSession() {
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  setConnection("reconnecting", "Connecting…");
  try {
    const me = (await api("GET", path`/whoami`)).body;
    setIdentity(me);
    const badge = document.getElementById("whoami");
    badge.textContent = me.role === "admin" ? "admin (every org)" : `${me.role} of org ${me.org_id.slice(0, 8)}`;
    badge.dataset.role = me.role;
    badge.hidden = false;
    if (me.role === "admin") await orgSwitcher();
  } catch (err) {
    if (!getToken()) return; // signed out by a 401
    setIdentity(null);
  }
  feed.start();
  route();
}

// The admin's org switcher: every org, or one (the lists then ask for
// `?org=`); kept in this tab like the token. An org that no longer exists
// falls back to every org.
async function orgSwitcher() {
  const select = document.getElementById("org-switch");
  const orgs = (await api("GET", path`/orgs`)).body;
  const kept = sessionStorage.getItem(ORG_KEY);
  const chosen = orgs.some((org) => org.id === kept) ? kept : "";
  fill(select, h("option", { value: "" }, "All orgs"), orgs.map((org) => h("option", { value: org.id }, org.name)));
  select.value = chosen;
  setOrgFilter(chosen);
  select.onchange = () => {
    setOrgFilter(select.value);
    if (select.value) sessionStorage.setItem(ORG_KEY, select.value);
    else sessionStorage.removeItem(ORG_KEY);
    route();
  };
  document.getElementById("org-switch-label").hidden = false;
  document.getElementById("nav-orgs").hidden = false;
}

// --- routing ---------------------------------------------------------------------------

let currentView = null;

function route() {
  if (!getToken()) return showSignIn();
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
  else if (where.view === "template") currentView = bundleView(main, "template", where.param);
  else if (where.view === "plugins") currentView = pluginsView(main);
  else if (where.view === "plugin") currentView = bundleView(main, "plugin", where.param);
  else if (where.view === "orgs") currentView = orgsView(main);
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

// --- start -----------------------------------------------------------------------------------------------

onUnauthorized(signOut);
setToken(sessionStorage.getItem(TOKEN_KEY));
document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
if (getToken()) startSession();
else showSignIn();
