// A small markdown renderer for model output that builds DOM nodes: every piece of the model's
// text reaches the page through textContent (escaped by construction), and only the structure
// (headings, paragraphs, emphasis, code, lists, tables, links) is made of elements. Links keep
// only http(s) URLs, open with rel="noopener noreferrer"; anything else stays text. Images are
// never made (they would load remote content): their markdown shows as text.

import {el} from "./dom.js";

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const LIST = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_RULE = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

export function render(text) {
  const root = el("div", {class: "markdown"});
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0, para = [];
  const flush = () => {
    if (para.length) root.append(el("p", {}, inline(para.join("\n"))));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      flush();
      const code = [];
      i++;
      while (i < lines.length && !FENCE.test(lines[i]) ) code.push(lines[i++]);
      i++;  // the closing fence (absent while an answer still streams)
      root.append(codeBlock(code.join("\n"), m[2]));
      continue;
    }
    if ((m = line.match(HEADING))) {
      flush();
      root.append(el("h" + Math.min(6, m[1].length + 2), {}, inline(m[2])));
      i++; continue;
    }
    if (RULE.test(line)) { flush(); root.append(el("hr")); i++; continue; }
    if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])
        && lines[i + 1].includes("-")) {
      flush();
      const head = cells(line);
      i += 2;
      const body = [];
      while (i < lines.length && lines[i].includes("|") && lines[i].trim()) body.push(cells(lines[i++]));
      root.append(el("div", {class: "table-wrap"}, el("table", {},
        el("thead", {}, el("tr", {}, head.map((c) => el("th", {scope: "col"}, inline(c))))),
        el("tbody", {}, body.map((row) => el("tr", {}, head.map((_, k) => el("td", {}, inline(row[k] || "")))))))));
      continue;
    }
    if ((m = line.match(LIST))) {
      flush();
      const ordered = /\d/.test(m[1]);
      const list = el(ordered ? "ol" : "ul");
      while (i < lines.length && (m = lines[i].match(LIST)) && /\d/.test(m[1]) === ordered) {
        let item = m[2];
        i++;
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !LIST.test(lines[i])) item += "\n" + lines[i++].trim();
        list.append(el("li", {}, inline(item)));
      }
      root.append(list);
      continue;
    }
    if (/^\s*>\s?/.test(line)) {
      flush();
      const quote = [];
      while (i < lines.length && /^\s*>\s?/.test(lines[i])) quote.push(lines[i++].replace(/^\s*>\s?/, ""));
      root.append(el("blockquote", {}, render(quote.join("\n"))));
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    para.push(line);
    i++;
  }
  flush();
  return root;
}

function codeBlock(code, lang) {
  const pre = el("pre", {}, el("code", {class: lang ? "language-" + lang.replace(/[^\w+-]/g, "") : null, text: code}));
  const copy = el("button", {type: "button", class: "copy", "aria-label": "Copy code", text: "Copy",
    onclick: async () => {
      try { await navigator.clipboard.writeText(code); copy.textContent = "Copied"; }
      catch (e) { copy.textContent = "Copy failed"; }
      setTimeout(() => { copy.textContent = "Copy"; }, 1500);
    }});
  return el("div", {class: "code"}, el("div", {class: "code-bar"}, el("span", {text: lang || "code"}), copy), pre);
}

// Inline structure, longest-first: code spans (literal), links, bold, italics, line breaks.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|!?\[([^\]\n]*)\]\(([^)\s]*)\)|\*\*([\s\S]+?)\*\*|__([\s\S]+?)__|\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])|~~([\s\S]+?)~~|(\n)/g;

export function inline(text) {
  const out = [];
  let last = 0, m;
  INLINE.lastIndex = 0;
  while ((m = INLINE.exec(text))) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    if (m[2] !== undefined) out.push(el("code", {text: m[2].replace(/^ (.*) $/, "$1")}));
    else if (m[3] !== undefined) out.push(link(m[0], m[3], m[4]));
    else if (m[5] !== undefined || m[6] !== undefined) out.push(el("strong", {}, inline(m[5] ?? m[6])));
    else if (m[7] !== undefined || m[8] !== undefined) out.push(el("em", {}, inline(m[7] ?? m[8])));
    else if (m[9] !== undefined) out.push(el("del", {}, inline(m[9])));
    else if (m[10] !== undefined) out.push(el("br"));
    last = INLINE.lastIndex;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function link(source, label, href) {
  if (source.startsWith("!")) return document.createTextNode(source);  // no remote images
  let parsed;
  try { parsed = new URL(href); } catch (e) { return document.createTextNode(source); }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return document.createTextNode(source);
  return el("a", {href: parsed.href, rel: "noopener noreferrer nofollow", target: "_blank",
    referrerpolicy: "no-referrer"}, label || parsed.href);
}
