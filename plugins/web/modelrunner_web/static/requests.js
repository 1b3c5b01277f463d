// Requests: the live request inspector (GET /engines/requests as server-sent events, read with
// fetch so an API key can be sent), filterable by model, and per-model charts of tok/s and time
// to first token over the recorded requests. Logs: GET /logs?follow=true, filterable.

import * as api from "./api.js";
import {el, errorBox} from "./dom.js";

function secs(v) { return typeof v === "number" ? v.toFixed(2) + " s" : "–"; }

function parse(text) { try { return JSON.parse(text); } catch (e) { return null; } }

function tokPerSecond(r) {
  const t = r.timings || {}, n = (r.usage || {}).completion_tokens;
  const gen = (t.duration || 0) - (t.ttft || 0);
  return n && gen > 0 ? n / gen : null;
}

function chart(label, values, unit) {
  const w = 160, h = 40, max = Math.max(...values, 1e-9);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`); svg.setAttribute("width", w); svg.setAttribute("height", h);
  svg.setAttribute("role", "img");
  const last = values[values.length - 1];
  svg.setAttribute("aria-label", `${label}: last ${last.toFixed(2)} ${unit}, max ${max.toFixed(2)} over ${values.length} requests`);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(" "));
  line.setAttribute("class", "spark");
  svg.append(line);
  return el("figure", {class: "metric"}, svg, el("figcaption", {text: `${label}: ${last.toFixed(2)} ${unit}`}));
}

export async function view(main) {
  const filter = el("input", {id: "req-filter", type: "search", placeholder: "model name"});
  const metrics = el("section", {id: "metrics", "aria-label": "Metrics"});
  const list = el("div", {id: "request-list", role: "log", "aria-label": "Requests"});
  main.replaceChildren(el("h2", {text: "Requests"}),
    el("div", {class: "field"}, el("label", {for: "req-filter", text: "Filter by model"}), filter),
    el("h3", {text: "At a glance"}), metrics, el("h3", {text: "Recent requests"}), list);
  const records = [];
  const draw = () => {
    const f = filter.value.trim().toLowerCase();
    const shown = records.filter((r) => !f || String(r.model).toLowerCase().includes(f));
    list.replaceChildren(...shown.slice().reverse().map(recordView));
    const byModel = {};
    for (const r of shown) (byModel[r.model] ||= []).push(r);
    metrics.replaceChildren(...Object.entries(byModel).map(([model, rs]) => {
      const tps = rs.map(tokPerSecond).filter((v) => v !== null);
      const ttft = rs.map((r) => (r.timings || {}).ttft).filter((v) => typeof v === "number");
      return el("div", {class: "metric-row"}, el("h4", {text: model}),
        tps.length ? chart("tok/s", tps, "tok/s") : el("span", {text: "no tok/s yet "}),
        ttft.length ? chart("time to first token", ttft, "s") : null);
    }));
  };
  filter.addEventListener("input", draw);
  const controller = new AbortController();
  const stopWhenGone = setInterval(() => { if (!main.isConnected) { controller.abort(); clearInterval(stopWhenGone); } }, 1000);
  try {
    const resp = await api.request("engines/requests?include_existing=true", {accept: "text/event-stream", signal: controller.signal});
    (async () => {
      try {
        for await (const ev of api.events(resp)) {
          if (ev.event === "existing_request" || ev.event === "new_request") { records.push(JSON.parse(ev.data)); draw(); }
        }
      } catch (e) { /* left the view */ }
    })();
  } catch (e) { list.replaceChildren(errorBox(e)); }
}

function recordView(r) {
  const request = parse(r.request) || {};
  const response = parse(r.response) || {};
  const prompt = (request.messages || []).map((m) => m.role + ": " + (typeof m.content === "string" ? m.content : JSON.stringify(m.content))).join("\n") || request.prompt || r.request;
  const answer = (((response.choices || [])[0] || {}).message || {}).content ?? r.response;
  const t = r.timings || {};
  const tps = tokPerSecond(r);
  return el("details", {class: "record", "data-model": r.model},
    el("summary", {}, `${new Date(r.timestamp * 1000).toLocaleTimeString()} ${r.method} ${r.url} `, el("strong", {text: r.model}),
      ` ${r.status_code}` + (t.duration ? ` · ${t.duration.toFixed(2)} s` : "") + (tps ? ` · ${tps.toFixed(1)} tok/s` : "")),
    el("dl", {},
      el("dt", {text: "Prompt"}), el("dd", {}, el("pre", {text: prompt})),
      el("dt", {text: "Response"}), el("dd", {}, el("pre", {text: r.error || String(answer ?? "")})),
      el("dt", {text: "Timings"}), el("dd", {text: `time to first token ${secs(t.ttft)}, total ${secs(t.duration)}, load ${secs(t.load_seconds)}`}),
      el("dt", {text: "Usage"}), el("dd", {text: JSON.stringify(r.usage || {})})));
}

export async function logsView(main) {
  const filter = el("input", {id: "log-filter", type: "search", placeholder: "text or [source]"});
  const engines = el("input", {id: "log-engines", type: "checkbox", checked: true});
  const out = el("pre", {id: "log-lines", class: "logs", tabindex: "0", "aria-label": "Log lines"});
  main.replaceChildren(el("h2", {text: "Logs"}),
    el("div", {class: "row"}, el("div", {class: "field"}, el("label", {for: "log-filter", text: "Filter"}), filter),
      el("div", {class: "field check"}, engines, el("label", {for: "log-engines", text: "Include runner logs"}))), out);
  const all = [];
  const draw = () => {
    const f = filter.value.toLowerCase();
    out.textContent = all.filter((l) => !f || l.toLowerCase().includes(f)).slice(-2000).join("\n");
    out.scrollTop = out.scrollHeight;
  };
  filter.addEventListener("input", draw);
  let controller = null;
  async function follow() {
    if (controller) controller.abort();
    controller = new AbortController();
    all.length = 0;
    const mine = controller;
    try {
      const resp = await api.request(`logs?follow=true&tail=500${engines.checked ? "" : "&no-engines=true"}`, {signal: mine.signal});
      for await (const line of api.lines(resp)) {
        if (!main.isConnected) { mine.abort(); return; }
        all.push(line); draw();
      }
    } catch (e) { if (e.name !== "AbortError") out.textContent = e.message; }
  }
  engines.addEventListener("change", follow);
  follow();
}
