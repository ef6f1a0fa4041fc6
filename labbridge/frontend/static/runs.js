// The Runs panel: a form per procedure (GET /procedures) to queue a run with its parameters and metadata; the
// queue (GET /runs/queue) with start, stop after the current run and, where the server has it, move up or down;
// the current run with pause, resume, stop, abort, its progress, message and a live plot of its points
// (runplot.js, fed by GET /runs/<id>/data?since=N as soon as a run event on /ws says there are new points, and
// every 250 ms besides); past runs, searchable by their metadata, with
// their parameters, CSV and HDF5 downloads and "run again". Uses el, format, localTime, headers, getJSON and
// $ (app.js), parameterInput and argumentsOf (actions.js).
"use strict";

const Runs = (() => {
  const ACTIVE = new Set(["running", "paused"]);
  const REFRESH_MS = 1000, DATA_MS = 250, PAST = 50;
  const panel = { procedures: null, canMove: false, current: null, run: null, query: "", busy: false, reading: false,
    readAgain: false };

  async function send(method, url, body) {
    const response = await fetch(url, { method, headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body) });
    const answer = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) $("#token-box").hidden = false;
      throw new Error(answer.message || `HTTP ${response.status}`);
    }
    return answer;
  }

  function say(message) {  // the answer to the last thing done on the panel (a refusal, say)
    const note = $("#runs-note");
    note.textContent = message;
    note.hidden = !message;
  }

  // Do `what`, then show the panel's new state at once; a refusal is shown under the panel's title.
  async function act(button, what) {
    if (button) button.disabled = true;
    try {
      await what();
      say("");
    } catch (failure) {
      say(failure.message);
    } finally {
      if (button) button.disabled = false;
      refresh();
    }
  }

  function button(label, attrs, onClick) {
    const node = el("button", { type: "button", ...attrs }, label);
    node.addEventListener("click", () => act(node, onClick));
    return node;
  }

  // Metadata as `key: value` lines (or key=value), or a JSON object for values that are not text.
  function metadataOf(text) {
    const trimmed = text.trim();
    if (!trimmed) return {};
    if (trimmed.startsWith("{")) {
      let value;
      try { value = JSON.parse(trimmed); } catch (failure) { throw new Error(`metadata is not JSON: ${failure.message}`); }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("metadata must be a JSON object");
      return value;
    }
    const metadata = {};
    for (const line of trimmed.split(/\r?\n/)) {
      if (!line.trim()) continue;
      const match = /^\s*([^:=]+?)\s*[:=]\s*(.*)$/.exec(line);
      if (!match) throw new Error(`metadata line "${line.trim()}" is not key: value`);
      metadata[match[1]] = match[2].trim();
    }
    return metadata;
  }

  function pairs(object) {  // start=0, stop=5 V … as one line
    return Object.entries(object || {}).map(([key, value]) =>
      `${key}=${value !== null && typeof value === "object" ? JSON.stringify(value) : format(value)}`).join(", ");
  }

  function when(run) {  // when it finished, started or was queued: local time, the raw seconds in the tooltip
    const [label, seconds] = run.finished ? ["finished", run.finished] : run.started ? ["started", run.started]
      : ["queued", run.created];
    return el("time", { class: "run-time", title: format(seconds), datetime: new Date(seconds * 1000).toISOString() },
      `${label} ${localTime(seconds)}`);
  }

  function procedureForm(name, info) {
    const id = `proc-${name}`;
    const required = new Set(info.parameters.required || []);
    const inputs = Object.entries(info.parameters.properties).map(([param, schema]) => {
      const field = parameterInput(id, param, schema, required.has(param));  // actions.js
      const input = field.querySelector("input");
      if (input && schema.default !== undefined) input.placeholder = format(schema.default);
      return field;
    });
    const metadata = el("textarea", { id: `metadata-${name}`, name: "metadata", rows: "2",
      placeholder: "sample: A12\noperator: ada", "aria-describedby": `hint-metadata-${name}` });
    const queue = el("button", { type: "submit", id: `queue-${name}`, title: info.doc }, `Queue ${name}`);
    const form = el("form", { class: "action procedure", id: `procedure-${name}`, "aria-label": `queue ${name}`,
      novalidate: "" }, queue, ...inputs,
      el("label", { class: "metadata" }, el("span", {}, "metadata"), metadata,
        el("small", { class: "hint", id: `hint-metadata-${name}` }, "key: value lines, or a JSON object")),
      el("p", { class: "doc" }, info.doc));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(queue, async () => {
        const body = { procedure: name, parameters: argumentsOf(form), metadata: metadataOf(metadata.value) };
        await send("POST", "/runs", body);
      });
    });
    return form;
  }

  function skeleton() {
    const search = el("input", { id: "runs-search", type: "search", placeholder: "sample, operator…",
      "aria-label": "search past runs by metadata" });
    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { panel.query = search.value.trim(); refresh(); }, 300);
    });
    const forms = Object.entries(panel.procedures).map(([name, info]) => procedureForm(name, info));
    $("#runs").replaceChildren(
      el("h2", {}, "Runs"),
      el("p", { id: "runs-note", class: "module-error", role: "status", hidden: true }),
      el("div", { class: "runs-procedures" }, el("h3", {}, "Procedures"), ...forms),
      el("div", { class: "runs-queue" }, el("h3", {}, "Queue"),
        el("div", { class: "run-controls" },
          button("Start queue", { id: "queue-start" }, () => send("POST", "/runs/queue/start")),
          button("Stop after current", { id: "queue-stop" }, () => send("POST", "/runs/queue/stop")),
          el("span", { id: "queue-state", role: "status" })),
        el("ol", { id: "queue-list" })),
      el("div", { class: "runs-current", id: "run-current", hidden: true }, el("h3", { id: "run-title" }),
        el("div", { class: "run-controls" },
          button("Pause", { id: "run-pause" }, () => control("pause")),
          button("Resume", { id: "run-resume" }, () => control("resume")),
          button("Stop", { id: "run-stop", title: "stop at the next checkpoint; the clean-up runs" }, () => control("stop")),
          button("Abort", { id: "run-abort", class: "danger", title: "stop at once; the clean-up runs" },
            () => send("DELETE", `/runs/${panel.current}`)),
          el("progress", { id: "run-progress", max: "1" }),
          el("span", { id: "run-status", role: "status" }), el("span", { id: "run-message" }),
          el("span", { id: "run-points" })),
        el("div", { id: "run-plot", class: "run-plot" })),
      el("div", { class: "runs-past" }, el("h3", {}, "Past runs"), search,
        el("table", {}, el("thead", {}, el("tr", {}, ...["When", "Procedure", "Status", "Parameters", "Metadata",
          "Points", "Data", ""].map((h) => el("th", { scope: "col" }, h)))), el("tbody", { id: "runs-past" }))));
  }

  function control(what) {
    return send("POST", `/runs/${panel.current}/${what}`);
  }

  async function loadProcedures() {
    let procedures;
    try {
      procedures = (await getJSON("/procedures")).procedures;  // app.js
    } catch (failure) {
      return false;  // none configured here, the backend is down or reads need a token: tried again later
    }
    panel.procedures = procedures;
    if (!Object.keys(procedures).length) return true;  // none configured: the panel stays hidden
    $("#runs").hidden = false;
    try {  // moving a queued run is newer than the queue: offered where the server lists it
      const paths = (await getJSON("/openapi.json")).paths || {};
      panel.canMove = Object.keys(paths).some((path) => /^\/runs\/\{[^}]+\}\/move$/.test(path));
    } catch { panel.canMove = false; }
    skeleton();
    return true;
  }

  // Rebuild `node`'s children only when what they show changed: a button is never swapped under a click.
  function replaceIfChanged(node, signature, build) {
    if (node.dataset.shown === signature) return;
    node.dataset.shown = signature;
    node.replaceChildren(...build());
  }

  function showQueue(queue, queued) {
    $("#queue-state").textContent = queue.started
      ? (queue.stop_after_current ? "stops after the current run" : "started") : "stopped";
    $("#queue-state").dataset.started = queue.started ? "yes" : "no";
    const byId = Object.fromEntries(queued.map((run) => [run.id, run]));
    const ids = queue.queued.filter((id) => byId[id]);
    replaceIfChanged($("#queue-list"), JSON.stringify(ids.map((id) => byId[id])), () => queueItems(ids, byId));
  }

  function queueItems(ids, byId) {
    const items = ids.map((id, i) => {
      const run = byId[id];
      const moves = panel.canMove ? [
        button("↑", { class: "move-up", title: "move up", disabled: i === 0 }, () => send("POST", `/runs/${id}/move`, { to: i - 1 })),
        button("↓", { class: "move-down", title: "move down", disabled: i === ids.length - 1 },
          () => send("POST", `/runs/${id}/move`, { to: i + 1 }))] : [];
      return el("li", { dataset: { run: id } }, el("strong", {}, run.procedure), " ", pairs(run.parameters),
        run.metadata && Object.keys(run.metadata).length ? el("span", { class: "metadata" }, ` · ${pairs(run.metadata)}`) : null,
        " ", ...moves, button("Remove", { class: "remove", title: "take it off the queue" },
          () => send("DELETE", `/runs/${id}`)));
    });
    return items.length ? items : [el("li", { class: "empty" }, "nothing queued")];
  }

  function showCurrent(run) {
    const box = $("#run-current");
    if (!run) return;
    box.hidden = false;
    $("#run-title").textContent = `${run.procedure} ${pairs(run.parameters)}`;
    $("#run-title").title = run.id;
    const status = $("#run-status");
    status.dataset.status = run.status;
    status.textContent = run.status === "failed" && run.error ? `failed: ${run.error.message}` : run.status;
    $("#run-message").textContent = run.message || "";
    const bar = $("#run-progress");
    if (typeof run.progress === "number") bar.value = run.progress;
    else bar.removeAttribute("value");
    $("#run-pause").hidden = run.status !== "running";
    $("#run-resume").hidden = run.status !== "paused";
    $("#run-stop").hidden = !ACTIVE.has(run.status);
    $("#run-abort").hidden = !ACTIVE.has(run.status);
  }

  function pastRow(run) {
    const href = `/runs/${run.id}/data`;
    return el("tr", { dataset: { run: run.id } }, el("td", {}, when(run)), el("td", {}, run.procedure),
      el("td", { class: "run-status", dataset: { status: run.status } }, run.status),
      el("td", {}, pairs(run.parameters)), el("td", {}, pairs(run.metadata)), el("td", {}, String(run.points)),
      el("td", {}, el("a", { class: "csv", href: `${href}?format=csv`, download: "" }, "CSV"), " ",
        el("a", { class: "hdf5", href: `${href}?format=hdf5`, download: "" }, "HDF5")),
      el("td", {}, button("Run again", { class: "again", title: "queue it again with the same parameters and metadata" },
        () => send("POST", "/runs", { procedure: run.procedure, parameters: run.parameters, metadata: run.metadata }))));
  }

  async function refresh() {
    if (panel.busy) return;
    panel.busy = true;
    try {
      if (!panel.procedures && !(await loadProcedures())) return;
      if (!Object.keys(panel.procedures).length) return;  // no procedures configured: no panel, nothing to ask
      const query = new URLSearchParams({ limit: PAST });
      if (panel.query) query.set("q", panel.query);
      const [queue, queued, past] = await Promise.all([getJSON("/runs/queue"),
        getJSON("/runs?status=queued&limit=1000"), getJSON(`/runs?${query}`)]);
      showQueue(queue, queued.runs);
      // The current run, else the last one shown (its final status, plot and points stay on show).
      const current = queue.current ?? panel.current;
      if (current) {
        if (current !== panel.current) follow(current);
        panel.run = await getJSON(`/runs/${current}`);
        showCurrent(panel.run);
      }
      const done = past.runs.filter((run) => run.status !== "queued");
      replaceIfChanged($("#runs-past"), JSON.stringify(done), () => done.map(pastRow));
    } catch (failure) {
      console.warn(`runs not read: ${failure.message}`);
    } finally {
      panel.busy = false;
    }
  }

  function follow(id) {  // show this run from its first point
    panel.current = id;
    panel.run = null;
    RunPlot.reset($("#run-plot"), id);
    $("#run-points").textContent = "";
  }

  // A run's event on /ws (app.js; at most every 100 ms while it records): its new points are read at once, not
  // at the next 250 ms tick (bench/runs.py: p95 from record() to the page 100 ms, not 250); a run just started
  // is followed at once, not at the next refresh.
  function live(event) {
    const run = event.run;
    if (!run) return;
    if (run.id !== panel.current) {
      if (ACTIVE.has(run.status)) refresh();
      return;
    }
    if (panel.run && panel.run.id === run.id) Object.assign(panel.run, { status: run.status, points: run.points });
    if (run.points > RunPlot.next()) readPoints();
  }

  // The current run's new points, while it runs (and once more after, up to its last point).
  async function readPoints() {
    const run = panel.run;
    if (!run || run.id !== panel.current) return;
    if (panel.reading) {  // one more read after this one: points may have come since it was sent
      panel.readAgain = true;
      return;
    }
    if (!ACTIVE.has(run.status) && RunPlot.next() >= run.points) return;
    panel.reading = true;
    panel.readAgain = false;
    try {
      const page = await getJSON(`/runs/${run.id}/data?since=${RunPlot.next()}&limit=10000`);
      if (RunPlot.add(page)) $("#run-points").textContent = `${page.next} point${page.next === 1 ? "" : "s"}`;
    } catch (failure) {
      console.warn(`points of run ${run.id} not read: ${failure.message}`);
    } finally {
      panel.reading = false;
    }
    if (panel.readAgain) readPoints();
  }

  function start() {
    refresh();
    setInterval(refresh, REFRESH_MS);
    setInterval(readPoints, DATA_MS);
  }

  return { start, refresh, live, metadataOf, panel };
})();

Runs.start();
