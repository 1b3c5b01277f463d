// Chat: pick a model, stream answers rendered as safe markdown, stop (aborting the request frees
// the runner's slot), tokens and tok/s per answer, images for vision models, image generation
// for diffusers models. History and settings live in this browser (localStorage) only.

import * as api from "./api.js";
import {el, errorBox} from "./dom.js";
import {render} from "./markdown.js";
import {displayName, modelKind} from "./models.js";

const STORE = "modelrunner-chat";
const load = () => { try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; } };
const save = (state) => localStorage.setItem(STORE, JSON.stringify(state));

export async function view(main, params) {
  const state = Object.assign({model: "", system: "", messages: [], settings: {temperature: "", top_p: "", max_tokens: "256", seed: ""}}, load());
  if (params.get("model") && params.get("model") !== state.model) { state.model = params.get("model"); state.messages = []; }
  const models = (await api.json("models")).flatMap((m) => m.tags.map(displayName));
  if (!state.model || !models.includes(state.model)) state.model = models[0] || "";

  const picker = el("select", {id: "chat-model"}, models.map((m) => el("option", {value: m, selected: m === state.model, text: m})));
  const system = el("textarea", {id: "chat-system", rows: 2, text: state.system});
  const setting = (name, label, attrs) => el("div", {class: "field"}, el("label", {for: "set-" + name, text: label}),
    el("input", {id: "set-" + name, type: "number", value: state.settings[name] ?? "", ...attrs,
      oninput: (e) => { state.settings[name] = e.target.value; save(state); }}));
  const log = el("div", {class: "messages", role: "log", "aria-live": "polite", "aria-label": "Conversation"});
  const note = el("p", {class: "note", id: "chat-note"});
  const input = el("textarea", {id: "chat-input", rows: 3, required: true});
  const attach = el("input", {id: "chat-image", type: "file", accept: "image/*"});
  const attachField = el("div", {class: "field", hidden: true}, el("label", {for: "chat-image", text: "Attach an image"}), attach);
  const send = el("button", {type: "submit", text: "Send"});
  const stop = el("button", {type: "button", text: "Stop", disabled: true, class: "stop"});
  const clear = el("button", {type: "button", text: "New chat", onclick: () => { state.messages = []; save(state); draw(); }});
  let kind = {kind: "completion"}, controller = null;

  const form = el("form", {class: "composer", onsubmit: (e) => { e.preventDefault(); submit(); }},
    el("label", {for: "chat-input", text: "Message"}), input, attachField, el("div", {class: "row"}, send, stop, clear));
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
  stop.addEventListener("click", () => controller && controller.abort());

  main.replaceChildren(el("h2", {text: "Chat"}),
    el("div", {class: "chat-settings"},
      el("div", {class: "field"}, el("label", {for: "chat-model", text: "Model"}), picker),
      el("details", {}, el("summary", {text: "System prompt and sampling"}),
        el("div", {class: "field"}, el("label", {for: "chat-system", text: "System prompt"}), system),
        el("div", {class: "row"}, setting("temperature", "Temperature", {step: "0.1", min: "0", max: "2"}),
          setting("top_p", "Top p", {step: "0.05", min: "0", max: "1"}),
          setting("max_tokens", "Max tokens", {step: "1", min: "1"}), setting("seed", "Seed", {step: "1"})))),
    note, log, form);

  system.addEventListener("input", () => { state.system = system.value; save(state); });
  picker.addEventListener("change", () => { state.model = picker.value; state.messages = []; save(state); pick(); });

  async function pick() {
    note.textContent = "";
    if (!state.model) { note.textContent = "No models: pull one in Models."; form.hidden = true; return; }
    try { kind = await modelKind(state.model); } catch (e) { kind = {kind: "completion"}; }
    form.hidden = kind.kind === "embedding";
    attachField.hidden = !kind.vision;
    if (kind.kind === "embedding") note.textContent = state.model + " is an embedding model: it does not chat.";
    if (kind.kind === "image-generation") note.textContent = state.model + " generates images: describe one.";
    draw();
  }

  function bubble(message) {
    const body = message.role === "assistant" ? render(message.content || "") : el("div", {class: "plain", text: textOf(message)});
    const extra = [];
    for (const part of Array.isArray(message.content) ? message.content : []) {
      if (part.type === "image_url") extra.push(el("img", {src: part.image_url.url, alt: "attached image", class: "thumb"}));
    }
    for (const src of message.images || []) extra.push(el("img", {src, alt: "generated image: " + (message.prompt || ""), class: "generated"}));
    return el("article", {class: "message " + message.role, "aria-label": message.role === "user" ? "You" : "Assistant"},
      el("h3", {class: "visually-hidden", text: message.role === "user" ? "You" : "Assistant"}), body, ...extra,
      message.stats ? el("p", {class: "stats", text: message.stats}) : null,
      message.error ? el("p", {class: "error", text: message.error}) : null);
  }
  function draw() { log.replaceChildren(...state.messages.map(bubble)); }

  async function submit() {
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    const file = attach.files[0];
    let content = text;
    if (file && kind.vision) {
      const data = await new Promise((ok) => { const r = new FileReader(); r.onload = () => ok(r.result); r.readAsDataURL(file); });
      content = [{type: "text", text}, {type: "image_url", image_url: {url: data}}];
      attach.value = "";
    }
    state.messages.push({role: "user", content});
    const answer = {role: "assistant", content: ""};
    state.messages.push(answer);
    draw();
    const node = log.lastChild;
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    try {
      if (kind.kind === "image-generation") await generate(text, answer);
      else await stream(answer, node);
    } catch (e) {
      answer.error = e.name === "AbortError" ? "Stopped." : e.message;
    } finally {
      controller = null; send.disabled = false; stop.disabled = true;
      save(state); node.replaceWith(bubble(answer));
      api.announce(answer.error || "Answer complete. " + (answer.stats || ""));
    }
  }

  async function generate(prompt, answer) {
    const started = performance.now();
    const data = await api.json("engines/v1/images/generations", {method: "POST", signal: controller.signal,
      body: {model: state.model, prompt, n: 1, response_format: "b64_json"}});
    answer.prompt = prompt;
    answer.images = (data.data || []).map((d) => "data:image/png;base64," + d.b64_json);
    answer.stats = answer.images.length + " image(s) in " + ((performance.now() - started) / 1000).toFixed(1) + " s";
  }

  async function stream(answer, node) {
    const messages = state.messages.slice(0, -1).filter((m) => !m.images).map((m) => ({role: m.role, content: m.content}));
    if (state.system.trim()) messages.unshift({role: "system", content: state.system});
    const body = {model: state.model, messages, stream: true, stream_options: {include_usage: true}};
    for (const name of ["temperature", "top_p", "max_tokens", "seed"]) {
      const v = state.settings[name];
      if (v !== "" && v !== undefined && !Number.isNaN(Number(v))) body[name] = Number(v);
    }
    const started = performance.now();
    let first = null, chunks = 0, usage = null;
    const resp = await api.request("engines/v1/chat/completions", {method: "POST", body, signal: controller.signal, accept: "text/event-stream"});
    const target = node.querySelector(".markdown");
    for await (const ev of api.events(resp)) {
      if (ev.data === "[DONE]") break;
      const chunk = JSON.parse(ev.data);
      if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
      if (chunk.usage) usage = chunk.usage;
      const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
      if (delta.content) {
        if (first === null) first = performance.now();
        chunks++;
        answer.content += delta.content;
        target.replaceChildren(...render(answer.content).childNodes);
      }
    }
    const end = performance.now();
    const tokens = (usage && usage.completion_tokens) || chunks;
    const seconds = first === null ? 0 : (end - first) / 1000;
    answer.stats = tokens + " tokens, " + (seconds > 0 ? (tokens / seconds).toFixed(1) : "–") + " tok/s, first token after " +
      (first === null ? "–" : ((first - started) / 1000).toFixed(2) + " s");
  }

  await pick();
}

function textOf(message) {
  if (typeof message.content === "string") return message.content;
  return (message.content || []).filter((p) => p.type === "text").map((p) => p.text).join("\n");
}
