// The API client: `api()` calls the JSON API of this origin with the
// operator's token as `Authorization: Bearer` (never in a URL or a cookie),
// and `path` is the one encoder of API paths. The session (app.js) gives the
// token with setToken and is told of a 401 through onUnauthorized.

// The protocol this page speaks (hearth_api::PROTOCOL_VERSION): it is served
// by the server it talks to, so they always agree.
const PROTOCOL = { "X-Hearth-Protocol": "2" };

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let token = null;
let identity = null;
let unauthorizedHandler = () => {};

// What the signed-in token is (GET /whoami: {role, org_id, token_id}), or
// null before it is known. The views hide what its role may not do; the
// server refuses it anyway.
export function setIdentity(value) {
  identity = value;
}

export function getIdentity() {
  return identity;
}

// The org the admin chose in the header's switcher (null: every org): the
// lists ask for it with `?org=` (orgQuery), and reads by name resolve in it.
let chosenOrg = null;

export function setOrgFilter(id) {
  chosenOrg = id || null;
}

export function orgQuery() {
  return chosenOrg ? { org: chosenOrg } : {};
}

// Whether the signed-in role includes `needed` (viewer < operator < owner < admin).
export function mayAct(needed) {
  const order = ["viewer", "operator", "owner", "admin"];
  return identity !== null && order.indexOf(identity.role) >= order.indexOf(needed);
}

// The token every call sends (null: signed out).
export function setToken(value) {
  token = value;
}

export function getToken() {
  return token;
}

// What to do when the server no longer accepts the token (sign out).
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export function unauthorized(message) {
  unauthorizedHandler(message);
}

// The headers of every call: the protocol, the token, what is accepted.
export function requestHeaders(accept) {
  return { ...PROTOCOL, Authorization: `Bearer ${token}`, Accept: accept };
}

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

export function path(literals, ...values) {
  let text = literals[0];
  values.forEach((value, i) => {
    text += pathSegment(value) + literals[i + 1];
  });
  return new ApiPath(text);
}

// The URL of an API call on this origin: a path from `path` and a query
// object, each value encoded by URLSearchParams (empty values left out).
export function apiUrl(apiPath, query) {
  if (!(apiPath instanceof ApiPath)) throw new TypeError("an API path must be built with path`…`");
  const url = new URL(apiPath.text, location.origin);
  // Nothing was resolved away: the path is exactly what was built.
  if (url.origin !== location.origin || url.pathname !== apiPath.text) throw new TypeError(`${JSON.stringify(apiPath.text)} is not a plain API path`);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

// A GET whose answer is text (a runtime's log); failures as api() throws them.
export async function apiText(apiPath, query) {
  const response = await fetch(apiUrl(apiPath, query), {
    method: "GET",
    headers: requestHeaders("text/plain"),
    cache: "no-store",
    credentials: "omit",
  });
  const text = await response.text();
  if (!response.ok) {
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    const message = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    if (response.status === 401) unauthorized(message);
    throw new ApiError(response.status, message, body);
  }
  return text;
}

export async function api(method, apiPath, query) {
  const response = await fetch(apiUrl(apiPath, query), {
    method,
    headers: requestHeaders("application/json"),
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
    if (response.status === 401) unauthorized(message);
    throw new ApiError(response.status, message, body);
  }
  return { body, next: response.headers.get("x-next-cursor") };
}
