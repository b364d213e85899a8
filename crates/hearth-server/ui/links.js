// Links inside the page: `parseRoute` reads the URL fragment and checks
// every id or name in it before a view may use it (a link is data from
// anyone), and `link` writes links the same way parseRoute reads them.

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
export const addressable = (name) => name !== "." && name !== "..";

// A link inside the page: each segment percent-encoded, as parseRoute reads it.
export function link(...segments) {
  return `#/${segments.map((segment) => encodeURIComponent(String(segment))).join("/")}`;
}

// The route in the URL fragment, checked. The fragment is split on `/`
// first and each segment decoded on its own, so an encoded `/`, `\`, `#` or
// `?` stays inside its segment; then each parameter must be what the API
// takes there. Anything else is an "invalid" route, whose view sends no
// request. A first segment the page does not know shows the fleet (as `#/`
// and the skip link `#main` do).
export function parseRoute(hash) {
  const raw = hash.replace(/^#/, "").split("/").filter(Boolean);
  let parts;
  try {
    parts = raw.map((segment) => decodeURIComponent(segment));
  } catch {
    return { section: null, view: "invalid", title: "Not a valid link", message: `This is not a valid link: ${shown(hash)} is not well-formed percent-encoding.` };
  }
  const [section, param, ...rest] = parts;
  if (section === "orgs") {
    if (param !== undefined) return { section, view: "invalid", title: "Not found", message: `There is no page at ${shown(hash)}.` };
    return { section, view: "orgs" };
  }
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
