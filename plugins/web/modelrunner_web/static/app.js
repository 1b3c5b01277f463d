// The page's router: one view at a time, chosen by the URL's hash (#models, #chat?model=...),
// so the back button and reloads keep the place. The API-key prompt appears on a 401.

import * as api from "./api.js";
import * as chat from "./chat.js";
import {errorBox} from "./dom.js";
import * as models from "./models.js";
import * as requests from "./requests.js";
import * as runners from "./runners.js";
import * as transcribe from "./transcribe.js";

const VIEWS = {models: models.view, chat: chat.view, transcribe: transcribe.view,
               runners: runners.view, requests: requests.view, logs: requests.logsView};

api.onKeyNeeded(() => new Promise((resolve) => {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  dialog.addEventListener("close", () => { api.setKey(input.value.trim()); input.value = ""; resolve(); }, {once: true});
  if (!dialog.open) dialog.showModal();
  input.focus();
}));

async function show() {
  const [name, query] = (location.hash.slice(1) || "models").split("?");
  const render = VIEWS[name] || models.view;
  const main = document.getElementById("main");
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === (VIEWS[name] ? name : "models")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const fresh = main.cloneNode(false);  // a new node: the old view's timers see it is gone
  main.replaceWith(fresh);
  document.title = (name[0].toUpperCase() + name.slice(1)) + " · modelrunner";
  try { await render(fresh, new URLSearchParams(query || "")); }
  catch (e) { fresh.append(errorBox(e)); }
}

window.addEventListener("hashchange", () => { show(); document.getElementById("main").focus(); });
show();
