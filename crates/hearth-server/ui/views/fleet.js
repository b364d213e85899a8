// The fleet: counts by status, a search and a status filter, and one page of
// workspaces at a time (keyset cursors), re-read as events arrive.

import { api, path, orgQuery } from "../api.js";
import { feed } from "../feed.js";
import { ageCell, conditionCell, failure, fill, focusHeading, h, money, statusBadge, throttle } from "../dom.js";
import { link } from "../links.js";

const STATUSES = ["provisioning", "online", "degraded", "offline", "failed", "paused", "hibernated", "removed"];
const PAGE_SIZES = [25, 50, 100, 200];

// Kept while the page is open: back on the fleet, the same filter and page.
const fleetState = { status: "", q: "", limit: 50, cursors: [null] };

export function fleetView(main) {
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
        api("GET", path`/workspaces`, { ...orgQuery(), limit: state.limit, cursor, status: state.status, q: state.q, include_removed: wantsRemoved ? "true" : undefined }),
        api("GET", path`/workspaces/counts`, orgQuery()),
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
