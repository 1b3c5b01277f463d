// The server's own API, same origin: every call goes through here, with the API key (if the user
// gave one; kept in sessionStorage, never on the server) and a JSON Content-Type on state changes
// (the trust boundary refuses other body types).

export const base = new URL("..", location.href);  // /ui/ -> the server's root (keeps a prefix)

export function url(path) { return new URL(path.replace(/^\//, ""), base).toString(); }

let askKey = null;
export function onKeyNeeded(fn) { askKey = fn; }
export function key() { return sessionStorage.getItem("modelrunner-key") || ""; }
export function setKey(value) { sessionStorage.setItem("modelrunner-key", value); }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function request(path, {method = "GET", body, signal, accept} = {}) {
  const headers = {};
  if (key()) headers["Authorization"] = "Bearer " + key();
  if (accept) headers["Accept"] = accept;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && body === undefined) { headers["Content-Type"] = "application/json"; body = null; }
  const resp = await fetch(url(path), {method, headers, signal, credentials: "same-origin",
    body: body === undefined || body === null ? undefined : JSON.stringify(body)});
  if (resp.status === 401 && askKey) {
    await askKey();
    return request(path, {method, body: body === null ? undefined : body, signal, accept});
  }
  if (!resp.ok) {
    let text = await resp.text();
    try { const j = JSON.parse(text); text = (j.error && (j.error.message || j.error)) || j.message || text; } catch (e) { /* plain text */ }
    throw new ApiError(resp.status, String(text).trim() || resp.statusText);
  }
  return resp;
}

export async function json(path, options) { return (await request(path, options)).json(); }

// Lines of a streamed body (NDJSON, logs), as they arrive.
export async function* lines(resp) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) { yield buffer.slice(0, i); buffer = buffer.slice(i + 1); }
  }
  if (buffer) yield buffer;
}

// Server-sent events over fetch (EventSource cannot send an API key): {event, data}.
export async function* events(resp) {
  let event = "message", data = [];
  for await (const raw of lines(resp)) {
    const line = raw.replace(/\r$/, "");
    if (line === "") {
      if (data.length) yield {event, data: data.join("\n")};
      event = "message"; data = [];
    } else if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
}

export function announce(text) { document.getElementById("status").textContent = text; }
