// Templates and plugins, the bundles a workspace is made of: their lists,
// and one detail view for either (its fields, its files, and the workspaces
// that use it).

import { api, orgQuery, path } from "../api.js";
import { ageCell, bytes, digestCode, failure, fields, fileTree, fill, focusHeading, h, statusBadge } from "../dom.js";
import { addressable, link } from "../links.js";

// Plugin names as links, comma-separated.
const pluginLinks = (names) => (names.length ? names.map((p, i) => [i ? ", " : "", h("a", { href: link("plugins", p) }, p)]) : "–");

function usedBy(title, params) {
  const section = h("section", { "aria-label": title }, h("h2", {}, title), h("p", { class: "muted" }, "Loading…"));
  api("GET", path`/workspaces`, { ...orgQuery(), ...params, limit: 100 })
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

export function templatesView(main) {
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
      const page = await api("GET", path`/templates`, { ...orgQuery(), limit: 100, cursor });
      for (const t of page.body) {
        body.append(
          h(
            "tr",
            { "data-template": t.name },
            h("td", {}, h("a", { href: link("templates", addressable(t.name) ? t.name : t.id) }, t.name)),
            h("td", {}, t.runtime || "–"),
            h("td", {}, t.model || "–"),
            h("td", {}, pluginLinks(t.plugins)),
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

export function pluginsView(main) {
  const body = h("tbody");
  main.append(
    h("h1", {}, "Plugins"),
    h("table", { id: "plugin-list" }, h("thead", {}, h("tr", {}, ["Name", "Version", "Description", "Content sha256"].map((t) => h("th", { scope: "col" }, t)))), body),
  );
  api("GET", path`/plugins`, orgQuery())
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

// What the detail view shows of each kind of bundle.
const BUNDLES = {
  template: {
    list: { href: "#/templates", text: "← Templates" },
    title: "Template",
    get: (name) => api("GET", path`/templates/${name}`, orgQuery()),
    fields: (t) => [
      ["id", h("code", {}, t.id)],
      ["runtime", t.runtime || "–"],
      ["model", t.model || "–"],
      ["plugins", pluginLinks(t.plugins)],
      ["assets digest", h("code", {}, t.assets_digest)],
    ],
    usedBy: (t) => ["Workspaces created from it", { template: t.name }],
  },
  plugin: {
    list: { href: "#/plugins", text: "← Plugins" },
    title: "Plugin",
    get: (name) => api("GET", path`/plugins/${name}`, orgQuery()),
    fields: (p) => [
      ["version", p.version],
      ["description", p.description || "–"],
      ["content sha256", h("code", {}, p.sha256)],
    ],
    usedBy: (p) => ["Workspaces that want it", { plugin: p.name }],
  },
};

// One template or plugin (`kind`): its fields, its files and who uses it.
export function bundleView(main, kind, name) {
  const bundle = BUNDLES[kind];
  main.append(h("p", {}, h("a", { href: bundle.list.href }, bundle.list.text)), h("h1", {}, `${bundle.title} ${name}`));
  const content = h("div");
  main.append(content);
  bundle
    .get(name)
    .then(({ body }) => {
      const total = body.files.reduce((sum, f) => sum + f.size, 0);
      content.append(
        fields(bundle.fields(body)),
        h("h2", {}, `Contents (${body.files.length} files, ${bytes(total)})`),
        fileTree(body.files),
        usedBy(...bundle.usedBy(body)),
      );
    })
    .catch((error) => content.append(failure(error)))
    .finally(() => focusHeading(main));
  return null;
}
