// Building the page from data: el() sets text with textContent, never HTML, so nothing a model
// or a server field says can become markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function size(bytes) {
  if (!bytes && bytes !== 0) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0, n = Number(bytes);
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(2) : n) + " " + units[i];
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 60) return s + " seconds ago";
  if (s < 3600) return Math.round(s / 60) + " minutes ago";
  if (s < 86400) return Math.round(s / 3600) + " hours ago";
  return Math.round(s / 86400) + " days ago";
}

export function table(caption, headers, rows) {
  return el("div", {class: "table-wrap"}, el("table", {},
    el("caption", {text: caption}),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {scope: "col", text: h})))),
    el("tbody", {}, rows)));
}

export function errorBox(error) {
  return el("p", {class: "error", role: "alert", text: String(error.message || error)});
}
