// Actions on the dashboard: per action a button with a small form for its parameters, then its progress,
// message, a cancel button and the result or error, updated live from /ws. Uses el, format and headers (app.js).
"use strict";

const shownInvocations = {};  // "module.action" -> the invocation on show (the newest one)
const STAGE = { pending: 0, running: 1 };  // then finished: an invocation only moves forward

async function refreshInvocations() {
  // The experiment process's word, e.g. after it restarted: what ran then is now lost.
  const body = await getJSON("/invocations");
  for (const invocation of body.invocations.reverse()) showInvocation(invocation);  // oldest first, newest last
}

function actionsPanel(module, actions) {
  const names = Object.keys(actions || {});
  if (!names.length) return null;
  return el("div", { class: "actions" }, el("h3", {}, "Actions"),
    ...names.map((name) => actionForm(module, name, actions[name])));
}

function schemaOf(schema) {  // an optional parameter's schema is {"anyOf": [schema, {"type": "null"}]}
  return schema.anyOf ? schema.anyOf.find((s) => s.type !== "null") : schema;
}

function parameterText(schema, required) {
  const value = schemaOf(schema);
  const unit = schema.unit ? ` ${schema.unit}` : "";
  let text = value.enum ? `one of ${value.enum.join(", ")}` : "";
  if (value.minimum !== undefined && value.maximum !== undefined) text = `${value.minimum} to ${value.maximum}${unit}`;
  else if (value.minimum !== undefined) text = `at least ${value.minimum}${unit}`;
  else if (value.maximum !== undefined) text = `at most ${value.maximum}${unit}`;
  return required ? text : `${text ? `${text}, ` : ""}optional`;
}

function parameterInput(id, name, schema, required) {
  const value = schemaOf(schema);
  const inputId = `arg-${id}-${name}`;
  let input;
  if (value.enum || value.type === "boolean") {
    input = el("select", { id: inputId, name });
    input.append(el("option", { value: "" }, required ? "choose…" : "(default)"));  // nothing the user did not choose
    for (const choice of value.enum || [true, false]) input.append(el("option", { value: String(choice) }, String(choice)));
  } else {
    const numeric = value.type === "number" || value.type === "integer";
    input = el("input", { id: inputId, name, type: numeric ? "number" : "text", step: value.type === "integer" ? "1" : "any",
      min: value.minimum, max: value.maximum, placeholder: required ? undefined : "(default)", title: schema.description });
  }
  input.dataset.type = value.type || "string";
  input.dataset.required = required ? "yes" : "";
  const limits = limitsHint(inputId, parameterText(schema, required));  // app.js: in full under the field
  if (limits) input.setAttribute("aria-describedby", limits.id);
  return el("label", { class: "parameter" }, el("span", {}, name), input, limits);
}

function argumentsOf(form) {
  const args = {};
  for (const input of form.querySelectorAll("[data-type]")) {
    const text = input.value.trim();
    if (text === "") {
      if (input.dataset.required) throw new Error(`enter ${input.name}`);
      continue;
    }
    const type = input.dataset.type;
    args[input.name] = type === "number" || type === "integer" ? Number(text) : type === "boolean" ? text === "true" : text;
  }
  return args;
}

function actionForm(module, name, info) {
  const id = `${module}-${name}`;
  const required = new Set(info.parameters.required);
  const inputs = Object.entries(info.parameters.properties).map(([param, schema]) =>
    parameterInput(id, param, schema, required.has(param)));
  const run = el("button", { type: "submit", id: `run-${id}`, title: info.doc }, name);
  const cancel = el("button", { type: "button", class: "cancel", id: `cancel-${id}`, hidden: true }, "Cancel");
  const bar = el("progress", { id: `progress-${id}`, max: "1", hidden: true });
  const status = el("span", { class: "action-status", id: `status-${id}`, role: "status" });
  const when = el("time", { class: "action-time", id: `when-${id}` });
  const form = el("form", { class: "action", id: `action-${id}`, "aria-label": `run ${name}`, novalidate: "" },
    run, ...inputs, cancel, el("div", { class: "action-progress" }, bar, status, when));
  form.dataset.returns = info.returns.unit || "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let args;
    try {
      args = argumentsOf(form);
    } catch (failure) {
      showActionError(id, failure.message);
      return;
    }
    run.disabled = true;
    try {
      const response = await fetch(`/${module}/${name}`, { method: "POST", headers: headers(true), body: JSON.stringify(args) });
      const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      if (response.ok) showInvocation(body);
      else {
        if (response.status === 401 || response.status === 403) $("#token-box").hidden = false;
        showActionError(id, body.message || `HTTP ${response.status}`);
      }
    } catch (failure) {
      showActionError(id, `not sent: ${failure.message}`);
    } finally {
      run.disabled = false;
    }
  });
  cancel.addEventListener("click", async () => {
    const shown = shownInvocations[`${module}.${name}`];
    if (!shown) return;
    cancel.disabled = true;
    try {
      const response = await fetch(shown.href, { method: "DELETE", headers: headers(false) });
      const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      if (response.ok) showInvocation(body);
      else showActionError(id, body.message || `HTTP ${response.status}`);
    } finally {
      cancel.disabled = false;
    }
  });
  return form;
}

function showActionError(id, message) {
  const status = document.getElementById(`status-${id}`);
  status.dataset.status = "refused";
  status.textContent = message;
}

function outcomeText(invocation, unit) {
  const result = invocation.result;
  const shown = result !== null && typeof result === "object" ? JSON.stringify(result) : `${format(result)}${unit ? ` ${unit}` : ""}`;
  switch (invocation.status) {
    case "pending": return "waiting to start…";
    case "running": return invocation.message || "running…";
    case "completed": return `done: ${shown}`;
    case "cancelled": return `cancelled${invocation.message ? ` (${invocation.message})` : ""}`;
    default: return `${invocation.status}: ${invocation.error ? invocation.error.message : ""}`;
  }
}

function showInvocation(invocation) {
  const key = `${invocation.module}.${invocation.action}`;
  const shown = shownInvocations[key];
  if (shown && shown.id !== invocation.id && shown.created > invocation.created) return;  // an older run's news
  if (shown && shown.id === invocation.id && (STAGE[invocation.status] ?? 2) < (STAGE[shown.status] ?? 2)) return;
  shownInvocations[key] = invocation;
  const id = `${invocation.module}-${invocation.action}`;
  const form = document.getElementById(`action-${id}`);
  if (!form) return;
  const active = invocation.status === "pending" || invocation.status === "running";
  const bar = document.getElementById(`progress-${id}`);
  bar.hidden = !active;
  if (invocation.progress === null) bar.removeAttribute("value");
  else bar.value = invocation.progress;
  document.getElementById(`cancel-${id}`).hidden = !active;
  const status = document.getElementById(`status-${id}`);
  status.dataset.status = invocation.status;
  status.textContent = outcomeText(invocation, form.dataset.returns);
  showWhen(document.getElementById(`when-${id}`), invocation);
}

function showWhen(node, invocation) {  // when the shown run was queued, started or finished: local time, raw in the tooltip
  const [label, seconds] = invocation.finished ? ["finished", invocation.finished]
    : invocation.started ? ["started", invocation.started] : ["queued", invocation.created];
  if (typeof seconds !== "number") { node.textContent = ""; node.removeAttribute("title"); return; }
  node.textContent = `${label} ${localTime(seconds)}`;  // app.js
  node.title = format(seconds);
  node.setAttribute("datetime", new Date(seconds * 1000).toISOString());
}
