// The dashboard: every module and attribute, live values over /ws, in-place editing.
"use strict";

const state = { modules: {}, backendUp: null, token: storedToken() };
const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function format(value) {
  // 15 significant digits, all a float holds exactly: 1795724976.62 stays itself (never 1795720000), 0.1 + 0.2 is 0.3.
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toPrecision(15));
  if (value === null || value === undefined) return "–";
  return String(value);
}

// A Unix time (unit s, named *_at or documented as one, like setpoint's changed_at) reads as a local date and time.
function isTime(name, info) {
  return info.unit === "s" && (info.type === "float" || info.type === "int")
    && (/_at$/.test(name) || /\b(unix time|epoch|timestamp)\b/i.test(info.doc || ""));
}

function localTime(seconds) {  // YYYY-MM-DD HH:MM:SS in the browser's zone, whole seconds (the tooltip has the rest)
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} `
    + `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function limitsHint(id, text) {  // the limits in full under a field (a placeholder that long was cut off)
  return text ? el("small", { class: "hint", id: `hint-${id}` }, text) : null;
}

function limitsText(info) {
  const unit = info.unit ? ` ${info.unit}` : "";
  if (info.choices) return `one of ${info.choices.join(", ")}`;
  if (info.min !== undefined && info.max !== undefined) return `${info.min} to ${info.max}${unit}`;
  if (info.min !== undefined) return `at least ${info.min}${unit}`;
  if (info.max !== undefined) return `at most ${info.max}${unit}`;
  return "";
}

// Storage may be blocked (a browser that keeps no site data): the token then lasts as long as the page.
function storedToken() {
  try { return localStorage.getItem("bridge-token") || ""; } catch { return ""; }
}

function storeToken(token) {
  state.token = token;
  try { localStorage.setItem("bridge-token", token); } catch { /* kept for this page only */ }
}

function headers(json) {
  const h = { Accept: "application/json" };
  if (json) h["Content-Type"] = "application/json";
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: headers(false) });
  const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
  if (!response.ok) throw Object.assign(new Error(body.message || `HTTP ${response.status}`), { status: response.status });
  return body;
}

function row(module, name, info) {
  const id = `${module}-${name}`;
  const limits = limitsText(info);
  if (info.type.startsWith("list[") || info.type.startsWith("ndarray[")) {  // arrays are read on demand, not pushed
    return el("tr", { dataset: { attribute: name } },
      el("th", { scope: "row", title: info.doc }, name, el("small", {}, info.doc)),
      el("td", {}, el("a", { href: `/${module}/${name}` }, "read as JSON"), " ", el("span", { class: "unit" }, info.unit || ""),
        Images.isImage(info) ? Images.view(module, name, info) : Plots.arrayChart(module, name, info)));  // images.js
  }
  const time = isTime(name, info);
  const value = el("span", { class: "value stale", id: `value-${id}`, dataset: time ? { time: "yes" } : {} }, "–");
  // A writable attribute's limits are under its field; a time's unit (s) is in its tooltip.
  const cell = el("td", {}, value, " ", el("span", { class: "unit" }, time ? "" : info.unit || ""),
    limits && !info.writable ? el("span", { class: "limits" }, ` (${limits})`) : null,
    el("span", { class: "read-error", id: `read-error-${id}`, hidden: true }));
  if (info.type === "float" || info.type === "int") cell.append(Plots.sparkline(module, name, info));
  if (info.writable) cell.append(editor(module, name, info, id));
  return el("tr", { dataset: { attribute: name } },
    el("th", { scope: "row", title: info.doc }, name, el("small", {}, info.doc)), cell);
}

function editor(module, name, info, id) {
  const numeric = info.type === "float" || info.type === "int";
  let input;
  if (info.choices || info.type === "bool") {
    // Starts on no value: Set sends only a value the user chose (true/false for a bool, never free text).
    input = el("select", { id: `input-${id}`, name, "aria-label": `new ${name}` }, el("option", { value: "" }, "choose…"));
    for (const choice of info.choices || ["true", "false"]) input.append(el("option", { value: choice }, choice));
  } else {
    input = el("input", { id: `input-${id}`, name, type: numeric ? "number" : "text", step: "any",
      min: info.min, max: info.max, "aria-label": `new ${name}` });
  }
  const limits = limitsHint(id, limitsText(info));
  if (limits) input.setAttribute("aria-describedby", limits.id);
  const error = el("span", { class: "field-error", id: `error-${id}`, role: "status" });
  const button = el("button", { type: "submit" }, "Set");
  // novalidate: the bridge checks the value and its message (limits and unit) is shown next to the field.
  const form = el("form", { "aria-label": `set ${name}`, novalidate: "" }, input, button, limits, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    let value = input.value;
    if (input.tagName === "SELECT" && value === "") { error.textContent = "choose a value first"; return; }
    if (numeric) {
      if (value.trim() === "") { error.textContent = "enter a number"; return; }
      value = Number(value);
    } else if (info.type === "bool") {
      value = value === "true";
    }
    button.disabled = true;
    try {
      const response = await fetch(`/${module}/${name}`, { method: "PUT", headers: headers(true), body: JSON.stringify({ value }) });
      const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      if (!response.ok) {
        if (response.status === 401 || response.status === 403) $("#token-box").hidden = false;
        input.setAttribute("aria-invalid", "true");
        error.textContent = body.message || `HTTP ${response.status}`;
      } else {
        show(module, name, body.value);
        input.value = "";
      }
    } catch (failure) {
      error.textContent = `not sent: ${failure.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function show(module, name, value) {
  const node = document.getElementById(`value-${module}-${name}`);
  if (!node) return;
  if (node.dataset.time && typeof value === "number") {
    node.textContent = value === 0 ? "never" : localTime(value);  // 0: nothing happened yet, not 1970
    node.title = format(value);  // the raw Unix seconds
  } else {
    node.textContent = Array.isArray(value) ? `${value.length} samples` : format(value);
  }
  node.classList.remove("stale");
  const error = document.getElementById(`read-error-${module}-${name}`);
  if (error) { error.hidden = true; error.textContent = ""; }
}

function showReadError(module, name, message) {
  const error = document.getElementById(`read-error-${module}-${name}`);
  if (!error) return;
  error.textContent = message;
  error.hidden = false;
  document.getElementById(`value-${module}-${name}`)?.classList.add("stale");
}

function render(modules) {
  const root = $("#modules");
  Plots.reset();
  Images.reset();
  root.replaceChildren();
  for (const [module, description] of Object.entries(modules)) {
    const rows = Object.entries(description.attributes).map(([name, info]) => row(module, name, info));
    root.append(el("section", { class: "module", id: `module-${module}`, "aria-label": module },
      el("h2", {}, module), el("div", { class: "class" }, description.class),
      el("p", { class: "doc" }, description.doc),
      el("p", { class: "module-error", id: `module-error-${module}`, role: "status", hidden: true }),
      el("table", {}, el("tbody", {}, ...rows)), actionsPanel(module, description.actions)));
  }
}

async function refreshValues() {
  for (const module of Object.keys(state.modules)) {
    const note = document.getElementById(`module-error-${module}`);
    try {
      const body = await getJSON(`/${module}/attributes`);
      for (const [name, reading] of Object.entries(body.attributes)) show(module, name, reading.value);
      note.hidden = true;
    } catch (failure) {
      note.textContent = `Cannot read ${module}: ${failure.message}`;
      note.hidden = false;
    }
  }
}

function setBackend(up, message) {
  const pill = $("#status");
  pill.dataset.state = up ? "ok" : "down";
  pill.textContent = up ? "backend connected" : "backend down";
  const banner = $("#banner");
  banner.hidden = up;
  banner.textContent = up ? "" : `The experiment process is not reachable: ${message}. Values shown may be stale; retrying…`;
  const recovered = up && state.backendUp === false;
  state.backendUp = up;
  if (recovered) start();
}

async function checkHealth() {
  try {
    const response = await fetch("/health", { headers: headers(false) });
    const body = await response.json();
    setBackend(response.ok, body.backend?.message || "no answer");
    Alarms.showSafeStates(body.modules);  // alarms.js

    showExperiments(body.experiments);
  } catch (failure) {
    setBackend(false, "the web frontend does not answer");
  }
}

function showExperiments(experiments) {  // a lab of several PCs: a pill each, a down one's modules greyed, still described
  const pills = document.getElementById("experiments");
  if (pills) {
    pills.replaceChildren(...Object.entries(experiments || {}).map(([name, pc]) => el("span", {
      class: "pill", id: `experiment-${name}`, dataset: { state: pc.up ? "ok" : "down" },
      title: pc.up ? `up since ${localTime(pc.since)}` : `down since ${localTime(pc.since)}: ${pc.message || ""}`,
    }, `${name} ${pc.up ? "up" : "down"}`)));
  }
  for (const [name, pc] of Object.entries(experiments || {})) {
    for (const module of pc.modules) {
      const section = document.getElementById(`module-${module}`);
      if (!section) continue;
      section.classList.toggle("down", !pc.up);
      section.title = pc.up ? "" : `${name}: ${pc.message}`;
    }
  }
}

function liveProtocols() {
  // The token rides in the handshake's Sec-WebSocket-Protocol header, never in the URL (access logs keep URLs).
  const token = state.token;
  if (!token) return ["labbridge"];
  const utf8 = String.fromCharCode(...new TextEncoder().encode(token));  // btoa takes bytes, a token may not be ASCII
  const base64url = btoa(utf8).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["labbridge", `bearer.${base64url}`];
}

// The /ws subscription: live values of the attributes on screen only (rows in or near the viewport, an open detail
// plot), each at most 10 times a second and always the latest; the others are refreshed every 5 s.  Called when
// the socket opens; follows scrolling, panels opened or closed, and the page being rebuilt.
function subscribeShown(socket) {
  const visible = new Set();
  let sent = null;
  let timer = null;
  const send = () => {
    if (socket.readyState !== WebSocket.OPEN) return;
    const names = new Set(visible);
    const detail = Plots.detail();
    if (detail) names.add(`${detail.module}.${detail.name}`);
    const wanted = JSON.stringify([...names].sort());
    if (wanted === sent) return;
    sent = wanted;
    socket.send(JSON.stringify({ subscribe: JSON.parse(wanted), max_rate: 10 }));
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(send, 100); };
  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) {  // id value-<module>-<attribute>: module names have no "-"
      const [module, ...rest] = entry.target.id.slice("value-".length).split("-");
      const name = `${module}.${rest.join("-")}`;
      if (entry.isIntersecting) visible.add(name); else visible.delete(name);
    }
    soon();
  }, { rootMargin: "100% 100%" });  // a screen around it: scrolling shows live values at once
  const observeRows = () => {
    seen.disconnect();
    visible.clear();
    document.querySelectorAll("#modules span.value[id^='value-']").forEach((node) => seen.observe(node));
    soon();
  };
  const rebuilt = new MutationObserver(observeRows);
  rebuilt.observe($("#modules"), { childList: true });
  observeRows();
  const detailCheck = setInterval(send, 1000);  // a detail plot opened or closed
  socket.addEventListener("close", () => {
    seen.disconnect(); rebuilt.disconnect(); clearInterval(detailCheck); clearTimeout(timer);
  });
}

function connectLive() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`, liveProtocols());
  state.socket = socket;
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.invocation) { showInvocation(event.invocation); return; }  // actions.js
    if (event.module === "runs") { Runs.live(event); return; }  // runs.js
    if (Alarms.live(event)) return;  // an alarm's severity, or a notice (alarms.js)
    Plots.live(event);
    if (event.error) showReadError(event.module, event.attribute, event.message);
    else show(event.module, event.attribute, event.value);
  };
  socket.onopen = () => subscribeShown(socket);
  socket.onclose = () => setTimeout(connectLive, 1000);
}

async function start() {
  try {
    state.modules = (await getJSON("/modules")).modules;
    render(state.modules);
    await refreshValues();
    await refreshInvocations();  // actions.js
    await Alarms.refresh();  // alarms.js
  } catch (failure) {
    if (failure.status === 401 || failure.status === 403) {  // reads need a token (auth_reads)
      $("#token-box").hidden = false;
      $("#modules").replaceChildren(el("p", { class: "module-error", role: "status" }, `${failure.message}: enter your token above.`));
    } else {
      setBackend(false, failure.message);
    }
  }
}

$("#token").value = state.token;
$("#token").addEventListener("change", (event) => {
  storeToken(event.target.value);
  start();
  state.socket?.close();  // reconnects with the new token
});
start();
checkHealth();
connectLive();
setInterval(checkHealth, 2000);
setInterval(refreshValues, 5000);
