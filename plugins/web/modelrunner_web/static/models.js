// Models: the local models with DMR's `model list` columns, details, pull (with progress the
// server remembers, so it survives a reload), tag, push, delete, disk use.

import * as api from "./api.js";
import {ago, el, errorBox, size, table} from "./dom.js";

export function shortId(id) { return (id || "").replace(/^sha256:/, "").slice(0, 12); }
export function displayName(tag) {
  return tag.replace(/^docker\.io\//, "").replace(/^index\.docker\.io\//, "").replace(/:latest$/, "");
}

// What a model does, for the chat view: "image-generation", "embedding" or "completion"; and
// whether it takes images. From its config, and Ollama's /api/show when that plugin is there.
export async function modelKind(name) {
  const model = await api.json("models/" + encodeURIComponent(name).replace(/%2F/g, "/"));
  const config = model.config || {};
  if (["diffusers", "dduf"].includes(config.format)) return {kind: "image-generation", vision: false, model};
  let caps = [];
  try { caps = (await api.json("api/show", {method: "POST", body: {model: name}})).capabilities || []; }
  catch (e) { /* no Ollama dialect: guess from the architecture */ }
  const arch = String(config.architecture || (config.gguf || {})["general.architecture"] || "");
  const embedding = caps.includes("embedding") || (!caps.length && /bert|embed/i.test(arch));
  return {kind: embedding ? "embedding" : "completion", vision: caps.includes("vision"), model};
}

export async function view(main) {
  const pullInput = el("input", {id: "pull-ref", name: "ref", required: true, autocomplete: "off",
    placeholder: "ai/smollm2 or hf.co/org/repo", "aria-describedby": "pull-help"});
  const pulls = el("section", {class: "pulls", "aria-label": "Pulls"});
  const list = el("div", {id: "model-list"});
  const disk = el("p", {id: "disk-use"});
  const form = el("form", {class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.json("ui/api/pulls", {method: "POST", body: {from: pullInput.value.trim()}});
      api.announce("Pulling " + pullInput.value);
      pullInput.value = "";
      poll();
    } catch (err) { pulls.prepend(errorBox(err)); }
  }}, el("label", {for: "pull-ref", text: "Pull a model"}), pullInput, el("button", {type: "submit", text: "Pull"}));
  main.replaceChildren(el("h2", {text: "Models"}), form,
    el("p", {id: "pull-help", class: "hint", text: "A registry reference (ai/smollm2, registry:5000/org/model) or hf.co/org/repo."}),
    pulls, disk, list);

  let timer = null, lastRunning = 0;
  async function poll() {
    clearTimeout(timer);
    if (!main.isConnected) return;
    let data;
    try { data = await api.json("ui/api/pulls"); } catch (e) { return; }
    pulls.replaceChildren(...data.pulls.map(pullView));
    const running = data.pulls.filter((p) => p.state === "running").length;
    if (running < lastRunning || data.pulls.some((p) => p.state === "success" && !p.seen)) refresh();
    data.pulls.forEach((p) => { p.seen = true; });
    lastRunning = running;
    if (running) timer = setTimeout(poll, 500);
  }

  async function refresh() {
    try {
      const [models, df] = await Promise.all([api.json("models"), api.json("engines/df")]);
      disk.textContent = "Disk use: " + size(df.models_disk_usage) + " in " + models.length + " model" + (models.length === 1 ? "" : "s");
      list.replaceChildren(modelTable(models, refresh));
    } catch (e) { list.replaceChildren(errorBox(e)); }
  }
  await refresh();
  await poll();
}

function pullView(p) {
  const layers = Object.entries(p.layers || {});
  const done = layers.reduce((n, [, l]) => n + (l.current || 0), 0);
  return el("article", {class: "pull " + p.state, "data-ref": p.ref, "aria-label": "Pull of " + p.ref},
    el("h3", {}, p.ref, " ", el("span", {class: "badge", text: p.state})),
    el("p", {text: p.message + (p.total ? " (" + size(done) + " of " + size(p.total) + ")" : "")}),
    layers.length ? el("ul", {class: "layers"}, layers.map(([id, l]) =>
      el("li", {}, el("span", {class: "mono", text: shortId(id)}), " ",
        el("progress", {max: l.size || 1, value: l.current || 0, "aria-label": "Layer " + shortId(id)}),
        " " + size(l.current) + " / " + size(l.size)))) : null);
}

function modelTable(models, refresh) {
  const rows = [];
  for (const m of models) {
    const c = m.config || {};
    const tags = m.tags.length ? m.tags : [m.id];
    for (const tag of tags) {
      const name = m.tags.length ? displayName(tag) : shortId(m.id);
      const details = el("tr", {class: "details", hidden: true}, el("td", {colspan: 8}));
      rows.push(el("tr", {"data-model": name},
        el("th", {scope: "row", text: name}),
        el("td", {text: c.parameters || ""}), el("td", {text: c.quantization || ""}),
        el("td", {text: c.architecture || c.format || ""}), el("td", {class: "mono", text: shortId(m.id)}),
        el("td", {text: m.created ? ago(m.created) : ""}), el("td", {text: c.size || ""}),
        el("td", {class: "actions"}, actions(name, m, details, refresh))), details);
    }
  }
  if (!rows.length) return el("p", {text: "No models yet: pull one above."});
  return table("Local models", ["Model name", "Parameters", "Quantization", "Architecture", "Model ID", "Created", "Size", "Actions"], rows);
}

function actions(name, model, details, refresh) {
  const path = "models/" + name;
  const output = el("span", {class: "action-output", role: "status"});
  const button = (text, label, fn) => el("button", {type: "button", text, "aria-label": label + " " + name, onclick: async () => {
    try { await fn(); } catch (e) { output.textContent = e.message; }
  }});
  return [
    button("Details", "Details of", async () => {
      details.hidden = !details.hidden;
      if (!details.hidden) details.firstChild.replaceChildren(await detailsView(name, model));
    }),
    el("a", {href: "#chat?model=" + encodeURIComponent(name), class: "button", "aria-label": "Chat with " + name, text: "Chat"}),
    button("Tag", "Tag", async () => {
      const target = prompt("New name for " + name + " (repository[:tag])");
      if (!target) return;
      const [repo, tag] = target.includes(":") && !target.endsWith("]") ? [target.slice(0, target.lastIndexOf(":")), target.slice(target.lastIndexOf(":") + 1)] : [target, "latest"];
      await api.json(path + "/tag?repo=" + encodeURIComponent(repo) + "&tag=" + encodeURIComponent(tag), {method: "POST"});
      refresh();
    }),
    button("Push", "Push", async () => {
      if (!confirm("Push " + name + " to its registry?")) return;
      const resp = await api.request(path + "/push", {method: "POST", body: {}, accept: "application/json"});
      for await (const line of api.lines(resp)) {
        if (!line.trim()) continue;
        const msg = JSON.parse(line);
        output.textContent = msg.message;
        if (msg.type === "error") throw new Error(msg.message);
      }
    }),
    button("Delete", "Delete", async () => {
      if (!confirm("Delete " + name + "? This removes it from disk when no other name points to it.")) return;
      await api.json(path, {method: "DELETE"});
      api.announce("Deleted " + name);
      refresh();
    }),
    output,
  ];
}

async function detailsView(name, model) {
  const parts = [el("h3", {text: "Config"}), el("pre", {class: "scroll", text: JSON.stringify(model.config, null, 2)})];
  try {
    const show = await api.json("api/show", {method: "POST", body: {model: name}});
    if (show.capabilities) parts.push(el("p", {text: "Capabilities: " + show.capabilities.join(", ")}));
    if (show.model_info) parts.push(el("h3", {text: "GGUF metadata"}), el("pre", {class: "scroll", text: JSON.stringify(show.model_info, null, 2)}));
    parts.push(el("h3", {text: "Chat template"}), el("pre", {class: "scroll", text: show.template || "(none)"}));
    parts.push(el("h3", {text: "License"}), el("pre", {class: "scroll", text: show.license || "(none)"}));
  } catch (e) {
    const gguf = (model.config || {}).gguf;
    if (gguf) parts.push(el("h3", {text: "GGUF metadata"}), el("pre", {class: "scroll", text: JSON.stringify(gguf, null, 2)}));
  }
  return el("div", {class: "model-details"}, parts);
}
