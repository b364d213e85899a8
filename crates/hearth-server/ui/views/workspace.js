// One workspace: its overview and conditions, its plugins (desired and
// installed), its assets, the operator's actions (each confirmed first) and
// its lifecycle timeline, kept current by the event feed.

import { api, apiText, ApiError, mayAct, path } from "../api.js";
import { feed } from "../feed.js";
import { ageCell, conditionOf, digestCode, failure, fields, fileTree, fill, focusHeading, h, money, statusBadge, throttle } from "../dom.js";
import { addressable, link } from "../links.js";

// Lines of the runtime's log the page shows (the last ones).
const LOG_LINES = 200;

// How much of a workspace's event log its timeline reads: at most this
// many pages of at most this many events (the API's largest page).
const TIMELINE_PAGES = 20;
const TIMELINE_PAGE_EVENTS = 1000;

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

// Who caused an event, in a few words: "operator owner 1a2b3c4d", "runtime",
// "system sweep"; nothing for an event written before actors were.
function actorText(actor) {
  if (!actor) return "";
  if (actor.kind === "operator") return `by ${actor.role}${actor.token_id ? ` ${actor.token_id.slice(0, 8)}` : ""}`;
  if (actor.kind === "system") return `by Hearth (${actor.reason})`;
  return `by ${actor.kind}`;
}

export function workspaceView(main, id) {
  const heading = h("h1", {}, "Workspace");
  const actionResult = h("div", { id: "action-result", "aria-live": "assertive" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Operator actions" });
  const overview = h("section", { "aria-labelledby": "overview-title" });
  const conditions = h("section", { "aria-labelledby": "conditions-title" });
  const plugins = h("section", { "aria-labelledby": "plugins-title" });
  const assets = h("section", { "aria-labelledby": "assets-title" });
  const runtime = h("section", { "aria-labelledby": "runtime-title" });
  const card = h("section", { "aria-labelledby": "card-title" });
  const logText = h("pre", { class: "log", id: "runtime-log" });
  const logs = h("section", { "aria-labelledby": "log-title" });
  const timelineList = h("ol", { class: "timeline", id: "timeline", reversed: true });
  const timeline = h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Lifecycle timeline"), timelineList);
  main.append(h("p", {}, h("a", { href: "#/" }, "← Fleet")), heading, actions, actionResult, h("div", { class: "grid" }, overview, conditions), plugins, assets, h("div", { class: "grid" }, runtime, card), logs, timeline);
  let workspace = null;
  let lastSeq = 0;
  // Events the feed added to the timeline, newest last: a timeline read
  // that started before they came keeps them (two reads can overlap, and
  // the slower one must not drop what the feed showed meanwhile).
  let streamed = [];

  // A viewer is shown no action (the server refuses them anyway).
  for (const { action, label, explain } of mayAct("operator") ? ACTIONS : []) {
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

  // The runtime's log, from the provisioner that runs it (the last lines;
  // Refresh reads them again).
  async function loadLogs() {
    const refresh = h("button", { type: "button", onclick: () => loadLogs() }, "Refresh");
    const title = h("h2", { id: "log-title" }, "Runtime log ", refresh);
    try {
      const text = await apiText(path`/workspaces/${id}/logs`, { tail: LOG_LINES });
      logText.textContent = text || "(empty)";
      fill(logs, title, h("p", { class: "muted" }, `The last ${LOG_LINES} lines; the program's own lines are marked [stdout] or [stderr].`), logText);
    } catch (error) {
      fill(logs, title, failure(error));
    }
  }

  function timelineItem(e) {
    const { actor, ...rest } = e.payload || {};
    const payload = Object.keys(rest).length ? JSON.stringify(rest) : "";
    return h("li", { "data-seq": e.seq, "data-event": e.event }, h("span", {}, ageCell(e.timestamp)), h("code", {}, e.event), h("span", { class: "actor", "data-actor": actor ? actor.kind : "" }, actorText(actor)), h("span", { class: "mono muted" }, payload));
  }

  // The workspace's kept events, oldest first, at most TIMELINE_PAGES pages.
  // A page holds at most TIMELINE_PAGE_EVENTS events and about 1 MiB, so a
  // short page does not mean the end: an empty one does. If retention
  // removes events while we read, we go on from where the log is complete
  // (410 events_compacted). Stopped at the limit, one event past the last
  // page says whether more follow; if so, the timeline says which events it
  // does not show (see truncatedNotice), above the ones read and below those
  // that arrive live.
  async function loadTimeline() {
    const all = [];
    let since = 0;
    let pages = 0;
    let complete = false;
    for (let i = 0; i < TIMELINE_PAGES; i++) {
      let body;
      try {
        ({ body } = await api("GET", path`/events`, { workspace_id: id, since, limit: TIMELINE_PAGE_EVENTS }));
      } catch (error) {
        since = resumeAfter(error, since);
        continue;
      }
      if (body.length === 0) {
        complete = true;
        break;
      }
      pages += 1;
      all.push(...body);
      since = body[body.length - 1].seq;
    }
    if (!complete) complete = !(await morePast(since));
    const readUpTo = all.length ? all[all.length - 1].seq : 0;
    streamed = streamed.filter((e) => e.seq > readUpTo);
    lastSeq = Math.max(lastSeq, readUpTo);
    const newer = [...streamed].reverse().map(timelineItem);
    fill(timelineList, ...newer, complete ? null : truncatedNotice(since, pages, all), ...all.reverse().map(timelineItem));
  }

  // Whether the log has an event after `since`.
  async function morePast(since) {
    try {
      const { body } = await api("GET", path`/events`, { workspace_id: id, since, limit: 1 });
      return body.length > 0;
    } catch (error) {
      resumeAfter(error, since); // throws anything but a 410 events_compacted
      // Retention removed events after `since`: newer ones exist.
      return true;
    }
  }

  // Where the log is complete again after a 410 events_compacted; any other
  // failure is thrown (and shown in the timeline).
  function resumeAfter(error, since) {
    const earliest = error instanceof ApiError && error.body && error.body.code === "events_compacted" ? error.body.earliest_seq : null;
    if (!Number.isInteger(earliest) || earliest - 1 <= since) throw error;
    return earliest - 1;
  }

  // The timeline stopped before the end of the log, after `since`: what it
  // read, what it does not show, and where to read the rest.
  function truncatedNotice(since, pages, read) {
    const span = read.length ? ` (#${read[0].seq} to #${read[read.length - 1].seq})` : "";
    return h(
      "li",
      { class: "gap notice", "data-timeline-truncated": "" },
      `Events after #${since} are not shown: the timeline reads at most ${TIMELINE_PAGES} pages of the log, oldest first, and stopped after ${pages} pages, ${read.length} events${span}. `,
      "Events that happen from now on appear above. To read the rest: ",
      h("code", {}, `hearth events --workspace ${id} --since ${since}`),
    );
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
      streamed.push(e);
      if (streamed.length > TIMELINE_PAGE_EVENTS) streamed.shift();
      timelineList.prepend(timelineItem(e));
    }
    refresh();
  });

  (async () => {
    await loadWorkspace();
    focusHeading(main);
    await loadAssets();
    await loadLogs();
    await loadTimeline().catch((error) => fill(timelineList, h("li", {}, failure(error))));
  })();
  return { dispose: unsubscribe };
}
