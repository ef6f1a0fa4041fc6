// Alarms on the dashboard: each attribute with limits coloured by its severity (GET /alarms, then live alarm
// events on /ws), with the limit crossed under its value; a banner at the top listing what is in alarm and the
// interlocks that tripped or latched (GET /interlocks, if the bridge has it), each with an Acknowledge button
// (POST /interlocks/<name>/ack); and a module's safe state on its card (from /health). Uses el, format,
// localTime, headers and $ (app.js).
"use strict";

const Alarms = (() => {
  const WORDS = { lolo: "at or below", low: "at or below", high: "at or above", hihi: "at or above" };
  const alarms = new Map();  // "module/attribute" -> {module, attribute, severity, limit, value, unit, limits}
  let interlocks = {};  // name -> the interlock, as GET /interlocks tells (none when the route is absent)
  const acknowledging = {};  // name -> the answer to the last Acknowledge (a refusal's message)

  function describe(alarm) {  // "MAJOR: at or above hihi 40 degC", "INVALID: read failed"
    if (alarm.severity === "invalid") return "INVALID: read failed";
    const bound = alarm.limits?.[alarm.limit];
    const unit = alarm.unit ? ` ${alarm.unit}` : "";
    return `${alarm.severity.toUpperCase()}: ${WORDS[alarm.limit] || ""} ${alarm.limit}`
      + (bound === undefined ? "" : ` ${format(bound)}${unit}`);
  }

  function mark(alarm) {  // colour the value, and say the limit crossed under it
    const id = `${alarm.module}-${alarm.attribute}`;
    const value = document.getElementById(`value-${id}`);
    if (!value) return;
    let note = document.getElementById(`alarm-${id}`);
    if (!note) {
      note = el("small", { class: "alarm-limit", id: `alarm-${id}`, role: "status" });
      // On its own line after the value and its unit, where a failed read's message goes too.
      value.parentElement.insertBefore(note, document.getElementById(`read-error-${id}`));
    }
    if (alarm.severity === "ok") {
      delete value.dataset.severity;
      value.removeAttribute("title");
      note.hidden = true;
      note.textContent = "";
      return;
    }
    value.dataset.severity = alarm.severity;
    value.title = describe(alarm);
    note.dataset.severity = alarm.severity;
    note.textContent = describe(alarm);
    note.hidden = false;
  }

  function apply(alarm) {
    const key = `${alarm.module}/${alarm.attribute}`;
    const known = alarms.get(key) || {};
    const merged = { ...known, ...alarm };
    alarms.set(key, merged);
    mark(merged);
    banner();
  }

  function banner() {
    const box = $("#alarm-banner");
    const items = [];
    for (const alarm of alarms.values()) {
      if (alarm.severity === "ok") continue;
      const unit = alarm.unit ? ` ${alarm.unit}` : "";
      items.push(el("li", { dataset: { severity: alarm.severity } },
        el("strong", {}, `${alarm.module}.${alarm.attribute}`), " ",
        alarm.severity === "invalid" ? "" : `${format(alarm.value)}${unit} `, describe(alarm)));
    }
    for (const [name, interlock] of Object.entries(interlocks)) {
      if (interlock.state === "ok") continue;
      const button = el("button", { type: "button", class: "ack", "aria-label": `acknowledge ${name}` }, "Acknowledge");
      button.addEventListener("click", () => acknowledge(name, button));
      const since = typeof interlock.since === "number" ? ` since ${localTime(interlock.since)}` : "";
      items.push(el("li", { dataset: { interlock: name, state: interlock.state } },
        el("strong", {}, `interlock ${name}`), ` ${interlock.state}${since}: ${interlock.condition || ""} `, button,
        acknowledging[name] ? el("span", { class: "field-error" }, acknowledging[name]) : null));
    }
    box.replaceChildren(...(items.length ? [el("ul", {}, ...items)] : []));
    box.hidden = items.length === 0;
  }

  async function acknowledge(name, button) {
    button.disabled = true;
    try {
      const response = await fetch(`/interlocks/${encodeURIComponent(name)}/ack`, { method: "POST", headers: headers(true),
        body: "{}" });
      const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      if (response.status === 401 || response.status === 403) $("#token-box").hidden = false;
      acknowledging[name] = response.ok ? "" : body.message || `HTTP ${response.status}`;
    } catch (failure) {
      acknowledging[name] = `not sent: ${failure.message}`;
    }
    await refreshInterlocks();
  }

  async function refreshInterlocks() {
    try {
      const response = await fetch("/interlocks", { headers: headers(false) });
      // No such route (a bridge without interlocks) or no right to read: no interlocks to show, and no error.
      interlocks = response.ok ? (await response.json()).interlocks || {} : {};
    } catch {
      interlocks = {};
    }
    banner();
  }

  async function refresh() {  // the severities now, after a (re)render or a reconnection
    try {
      const response = await fetch("/alarms", { headers: headers(false) });
      if (response.ok) for (const alarm of (await response.json()).alarms) apply(alarm);
    } catch { /* the backend's banner says it is down */ }
    for (const alarm of alarms.values()) mark(alarm);  // the table was drawn again
    await refreshInterlocks();
  }

  function live(event) {  // true when the event was an alarm's or a notice (not a value to show)
    if (event.alarm !== undefined && event.severity !== undefined) {
      apply({ module: event.module, attribute: event.alarm, severity: event.severity, limit: event.limit,
        value: event.value?.value ?? null });
      return true;
    }
    if (event.notice) {
      if (["trip", "clear", "ack"].includes(event.notice.kind)) refreshInterlocks();
      return true;
    }
    return false;
  }

  function showSafeStates(modules) {  // /health: when and why a module was put in its safe state
    for (const [name, health] of Object.entries(modules || {})) {
      const card = document.getElementById(`module-${name}`);
      if (!card) continue;
      let note = document.getElementById(`safe-state-${name}`);
      const safe = health.safe_state;
      if (!safe) { if (note) note.hidden = true; continue; }
      if (!note) {
        note = el("p", { class: "safe-state", id: `safe-state-${name}`, role: "status" });
        card.insertBefore(note, card.querySelector("table"));
      }
      const when = typeof safe.applied_at === "number" ? localTime(safe.applied_at) : "";
      note.textContent = `Put in its safe state ${when}: ${safe.reason || ""}`;
      note.hidden = false;
    }
  }

  // Notices on /ws say when an interlock changes; a page that missed one (its socket was reconnecting) catches up
  // within a few seconds, and only where interlocks are configured.
  setInterval(() => { if (Object.keys(interlocks).length) refreshInterlocks(); }, 5000);

  return { refresh, live, showSafeStates };
})();
