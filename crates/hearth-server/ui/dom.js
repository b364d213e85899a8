// DOM helpers shared by the views: `h` builds an element (every text set
// with textContent or a text node, never parsed as HTML), `fill` replaces
// an element's children, and the small renderers every view uses (ages that
// keep themselves current, badges, digests, file trees, error lines).

export function h(tag, attrs, ...children) {
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
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export function age(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

// An age that keeps itself current (see the ticker below).
export function ageCell(iso) {
  return h("time", { datetime: iso || "", "data-age": iso || "", title: iso || "no heartbeat yet" }, age(iso));
}

setInterval(() => {
  for (const el of document.querySelectorAll("[data-age]")) {
    if (el.dataset.age) el.textContent = age(el.dataset.age);
  }
}, 1000);

export const money = (cents) => `$${Math.floor(cents / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;
export const short = (digest) => (digest ? String(digest).replace(/^sha256:/, "").slice(0, 12) : "–");
export const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

export function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, status);
}

export function conditionOf(workspace, type) {
  return (workspace.conditions || []).find((c) => c.type === type);
}

// A condition at a glance: a mark and a word, never colour alone.
export function conditionCell(workspace, type, words) {
  const c = conditionOf(workspace, type);
  if (!c) return h("span", { class: "cond none", title: `${type}: not reported yet` }, "– not yet");
  const ok = c.status === "True";
  return h(
    "span",
    { class: `cond ${ok ? "ok" : "bad"}`, title: `${type}=${c.status} (${c.reason}): ${c.message}`, "data-condition": `${type}=${c.status}` },
    ok ? `✓ ${words[0]}` : `✗ ${c.reason || words[1]}`,
  );
}

export function digestCode(digest) {
  return h("code", { title: digest || "" }, short(digest));
}

// Name/value pairs as a `dl.fields`; an empty value shows a muted dash.
export function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? h("span", { class: "muted" }, "–") : v)]));
}

// Paths as a nested list: directories, then files with size and sha256.
export function fileTree(files) {
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

export function focusHeading(main) {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

export function failure(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// Runs `task` at most once per `ms`, the last call winning.
export function throttle(task, ms) {
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
