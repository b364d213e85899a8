// The admin's orgs: each with its workspaces, quotas and their use
// (`GET /orgs`, then `GET /orgs/{id}` for each).

import { api, path } from "../api.js";
import { bytes, failure, fill, focusHeading, h } from "../dom.js";

const QUOTAS = [
  ["workspaces", "Workspaces", String],
  ["running", "Running", String],
  ["template_bytes", "Template storage", bytes],
  ["plugin_bytes", "Plugin storage", bytes],
];

// "3 of 10", or "3" when the org has no such quota.
function quotaCell(org, [key, , show]) {
  const used = org.usage ? org.usage[key] : null;
  const limit = org.quotas ? org.quotas[key] : null;
  const usedText = used === null || used === undefined ? "?" : show(used);
  const full = limit !== null && limit !== undefined && used !== null && used >= limit;
  return h(
    "td",
    { "data-quota": key, class: full ? "over" : null },
    limit === null || limit === undefined ? usedText : `${usedText} of ${show(limit)}`,
  );
}

export function orgsView(main) {
  const body = h("tbody");
  main.append(
    h("h1", {}, "Orgs"),
    h("p", { class: "muted" }, "Each org's quotas and their use. Set them with hearth org quota ORG …; a quota reached is shown in red."),
    h("table", { id: "orgs" }, h("thead", {}, h("tr", {}, ["Name", "Id", ...QUOTAS.map(([, title]) => title)].map((t) => h("th", { scope: "col" }, t)))), body),
  );
  focusHeading(main);
  (async () => {
    try {
      const orgs = (await api("GET", path`/orgs`)).body;
      for (const listed of orgs) {
        const org = (await api("GET", path`/orgs/${listed.id}`)).body;
        body.append(h("tr", { "data-org": org.name }, h("td", {}, org.name), h("td", { class: "mono" }, org.id.slice(0, 8)), QUOTAS.map((quota) => quotaCell(org, quota))));
      }
    } catch (error) {
      fill(body, h("tr", {}, h("td", { colspan: 2 + QUOTAS.length }, failure(error))));
    }
  })();
  return null;
}
