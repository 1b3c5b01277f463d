// Transcribe: speech to text with a model whose engine transcribes (GET /engines/options says
// which formats' engines have the mode "transcription"). Upload an audio file, or record one
// from the microphone (MediaRecorder: WebM/Opus in Chromium, which the server converts with
// ffmpeg); the answer comes from OpenAI's POST /v1/audio/transcriptions, as a multipart form.

import * as api from "./api.js";
import {el, errorBox} from "./dom.js";
import {displayName} from "./models.js";

const FORMATS = ["text", "srt", "vtt", "verbose_json", "json"];

async function transcriptionModels() {
  const engines = await api.json("engines/options").catch(() => ({}));
  const formats = new Set(Object.values(engines || {})
    .filter((e) => (e.modes || []).includes("transcription")).flatMap((e) => e.formats || []));
  return (await api.json("models")).filter((m) => formats.has((m.config || {}).format))
    .flatMap((m) => m.tags.map(displayName));
}

// The form goes as multipart/form-data (the browser writes the boundary): the one body type
// besides JSON that this route accepts, and only from this server's own pages.
async function transcribe(fields, audio, name) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) if (value) form.append(key, value);
  form.append("file", audio, name);
  const headers = api.key() ? {Authorization: "Bearer " + api.key()} : {};
  const resp = await fetch(api.url("v1/audio/transcriptions"), {method: "POST", headers, body: form, credentials: "same-origin"});
  const text = await resp.text();
  if (!resp.ok) {
    let message = text;
    try { message = JSON.parse(text).error.message; } catch (e) { /* plain text */ }
    throw new api.ApiError(resp.status, message || resp.statusText);
  }
  return fields.response_format.endsWith("json") ? JSON.stringify(JSON.parse(text), null, 2) : text;
}

export async function view(main) {
  const models = await transcriptionModels();
  const field = (id, label, input) => el("div", {class: "field"}, el("label", {for: id, text: label}), input);
  const model = el("select", {id: "tr-model"}, models.map((m) => el("option", {value: m, text: m})));
  const format = el("select", {id: "tr-format"}, FORMATS.map((f) => el("option", {value: f, text: f})));
  const language = el("input", {id: "tr-language", placeholder: "auto (or en, fr, de...)", size: 12});
  const file = el("input", {id: "tr-file", type: "file", accept: "audio/*,video/webm"});
  const go = el("button", {type: "submit", text: "Transcribe"});
  const record = el("button", {type: "button", id: "tr-record", text: "Record"});
  const result = el("pre", {id: "tr-result", "aria-live": "polite", hidden: true});
  const status = el("p", {class: "note", id: "tr-status"});
  let recorder = null;

  async function run(audio, name) {
    result.hidden = true;
    status.textContent = "Transcribing " + name + "...";
    go.disabled = record.disabled = true;
    try {
      result.textContent = await transcribe({model: model.value, response_format: format.value, language: language.value.trim()}, audio, name);
      result.hidden = false;
      status.textContent = "";
      api.announce("Transcription done");
    } catch (e) {
      status.replaceChildren(errorBox(e));
    } finally { go.disabled = record.disabled = false; }
  }

  record.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({audio: true}); }
    catch (e) { status.replaceChildren(errorBox("No microphone: " + (e.message || e))); return; }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || "audio/webm";
      recorder = null;
      record.textContent = "Record";
      run(new Blob(chunks, {type}), "recording." + (type.includes("ogg") ? "ogg" : "webm"));
    });
    recorder.start();
    record.textContent = "Stop recording";
    status.textContent = "Recording...";
  });

  const form = el("form", {class: "config", onsubmit: (e) => {
    e.preventDefault();
    if (!file.files.length) { status.replaceChildren(errorBox("Choose an audio file, or record one.")); return; }
    run(file.files[0], file.files[0].name);
  }}, el("div", {class: "row"}, field("tr-model", "Model", model), field("tr-format", "Format", format),
    field("tr-language", "Language", language)),
    field("tr-file", "Audio file", file), el("div", {class: "row"}, go, record));

  main.replaceChildren(el("h2", {text: "Transcribe"}),
    models.length ? form : el("p", {class: "note", text: "No speech-to-text models: package a whisper model (model package --format whisper)."}),
    status, result);
}
