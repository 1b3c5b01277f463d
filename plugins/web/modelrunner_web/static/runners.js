// Runners: what is loaded (GET /engines/ps), unload, and configure (POST /engines/_configure,
// which validates as for any client: its error text is shown as is).

import * as api from "./api.js";
import {el, errorBox, size, table} from "./dom.js";
import {displayName} from "./models.js";

function until(expires) {
  if (expires === null || expires === undefined) return "never (busy or kept)";
  const s = Math.round(expires - Date.now() / 1000);
  return s <= 0 ? "now" : s < 120 ? s + " s" : Math.round(s / 60) + " min";
}

export async function view(main) {
  const list = el("div", {id: "runner-list"});
  const models = (await api.json("models")).flatMap((m) => m.tags.map(displayName));
  const field = (id, label, input) => el("div", {class: "field"}, el("label", {for: id, text: label}), input);
  const model = el("select", {id: "cfg-model", required: true}, models.map((m) => el("option", {value: m, text: m})));
  const context = el("input", {id: "cfg-context", type: "number", min: "1", step: "1", placeholder: "model default"});
  const keep = el("input", {id: "cfg-keep", placeholder: "5m, 1h, -1 (forever), 0"});
  const mode = el("select", {id: "cfg-mode"}, ["completion", "embedding", "reranking", "image-generation"].map((m) => el("option", {value: m, text: m})));
  const flags = el("input", {id: "cfg-flags", placeholder: "--threads 4"});
  const result = el("p", {id: "cfg-result", role: "status"});
  const form = el("form", {class: "config", onsubmit: async (e) => {
    e.preventDefault();
    const body = {model: model.value, mode: mode.value};
    if (context.value) body["context-size"] = Number(context.value);
    if (keep.value.trim()) body.keep_alive = keep.value.trim();
    if (flags.value.trim()) body["raw-runtime-flags"] = flags.value.trim();
    try {
      const r = await api.json("engines/_configure", {method: "POST", body});
      result.className = ""; result.textContent = "Saved for " + r.Model + " (" + r.Backend + ", " + r.Mode + ").";
      refresh();
    } catch (err) { result.className = "error"; result.textContent = err.message; }
  }}, el("fieldset", {}, el("legend", {text: "Configure a model's runner"}),
    el("div", {class: "row"}, field("cfg-model", "Model", model), field("cfg-mode", "Mode", mode),
      field("cfg-context", "Context size", context), field("cfg-keep", "Keep alive", keep), field("cfg-flags", "Runtime flags", flags)),
    el("button", {type: "submit", text: "Save configuration"}), result));
  const unloadAll = el("button", {type: "button", text: "Unload all", onclick: async () => {
    await api.json("engines/unload", {method: "POST", body: {all: true}}); refresh();
  }});
  main.replaceChildren(el("h2", {text: "Runners"}), el("div", {class: "row"}, unloadAll), list, form);

  let timer;
  async function refresh() {
    clearTimeout(timer);
    if (!main.isConnected) return;
    try {
      const ps = await api.json("engines/ps");
      list.replaceChildren(ps.length ? table("Loaded runners", ["Model", "Engine", "Mode", "State", "Memory", "Context", "Unloads in", "Actions"],
        ps.map((r) => el("tr", {"data-runner": displayName(r.model_name)},
          el("th", {scope: "row", text: displayName(r.model_name)}), el("td", {text: r.backend_name}), el("td", {text: r.mode}),
          el("td", {class: "state", text: r.loading ? "loading" : r.in_use ? "busy" : "idle"}),
          el("td", {text: size(r.memory)}), el("td", {text: r.context_size ?? ""}), el("td", {text: until(r.expires_at)}),
          el("td", {}, el("button", {type: "button", text: "Unload", "aria-label": "Unload " + displayName(r.model_name), onclick: async () => {
            await api.json("engines/unload", {method: "POST", body: {models: [r.model_name], backend: r.backend_name}});
            api.announce("Unloaded " + r.model_name); refresh();
          }}))))) : el("p", {id: "no-runners", text: "No model is loaded."}));
    } catch (e) { list.replaceChildren(errorBox(e)); }
    timer = setTimeout(refresh, 2000);
  }
  await refresh();
}
