// Plots on the dashboard, drawn with uPlot (static/vendor/uplot; no build step, no CDN):
// - a live sparkline of the last 10 minutes beside each numeric attribute (history, then live values);
// - a click on it opens a larger plot over a chosen range (10 min, 1 h, 1 day or custom), mean with a
//   min-max band, fed by GET /<module>/<attribute>/history and then by live values; drag to zoom in;
// - array attributes (ModuleA's trace) as a line chart over the sample index.
// app.js calls Plots.sparkline / Plots.arrayChart when it builds a row, and Plots.live for each live value.
"use strict";

const Plots = (() => {
  const SPARK_SECONDS = 600;
  const BUCKETS = 600;  // points a plot asks for: the history endpoint averages down to about this many
  const RANGES = { "10 min": 600, "1 h": 3600, "1 day": 86400 };
  const COLOR = "#2457c5";
  const sparklines = {};  // "module/attribute" -> { plot, data }
  const arrays = {};  // "module/attribute" -> uPlot of an array attribute
  // The open larger plot: { key, plot, data, view: [since, until] shown, seconds (null: a fixed range), fetches, loaded }
  let detail = null;

  const now = () => Date.now() / 1000;
  const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

  // [[t...], [mean...], [min...], [max...]] of the range, in buckets of about range / BUCKETS seconds.
  async function history(module, name, since, until) {
    const every = Math.max(0.001, (until - since) / BUCKETS);
    const query = new URLSearchParams({ since, until, every, limit: BUCKETS * 2 });
    const columns = [[], [], [], []];
    try {
      const response = await fetch(`/${module}/${name}/history?${query}`, { headers: headers(false) });
      if (!response.ok) return columns;  // history off or unreachable: the plot fills with live values only
      for (const point of (await response.json()).points) point.forEach((v, i) => columns[i].push(v));
    } catch (failure) {
      console.warn(`history of ${module}.${name} not read: ${failure.message}`);
    }
    return columns;
  }

  function plotOptions(width, height, extra) {
    // A constant value still gets a visible line, in the middle of a small range around it.
    const y = { range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) };
    return { width, height, legend: { show: false }, scales: { x: { time: true }, y }, ...extra };
  }

  function sparkline(module, name, info) {
    const box = document.createElement("span");
    Object.assign(box, { className: "sparkline", title: `${name}: click for a larger plot`, tabIndex: 0 });
    box.setAttribute("role", "button");
    box.id = `spark-${module}-${name}`;
    const data = [[], []];
    const plot = new uPlot(plotOptions(180, 36, {
      cursor: { show: false }, axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: COLOR, width: 1.5, spanGaps: false, points: { show: (u, i, i0, i1) => i1 - i0 < 3 } }],
    }), data, box);
    sparklines[`${module}/${name}`] = { plot, data };
    const open = () => openDetail(module, name, info);
    box.addEventListener("click", open);
    box.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    const end = now();
    history(module, name, end - SPARK_SECONDS, end).then(([t, mean]) => {
      // Live values that came in meanwhile are newer: keep them after the recorded ones.
      const liveT = data[0].splice(0), liveV = data[1].splice(0);
      data[0].push(...t, ...liveT);
      data[1].push(...mean, ...liveV);
      plot.setData(data);
    });
    return box;
  }

  function live(event) {
    if (!(event.error || event.value === null || isNumber(event.value))) return;  // only numbers are plotted
    const key = `${event.module}/${event.attribute}`;
    const t = isNumber(event.time) ? event.time : now();
    const value = event.error ? null : event.value;  // a failed read is a gap
    const spark = sparklines[key];
    if (spark) {
      append(spark.data, t, [value], t - SPARK_SECONDS);
      spark.plot.setData(spark.data);
    }
    if (detail && detail.key === key && detail.seconds !== null && detail.view) {
      append(detail.data, t, [value, value, value], t - detail.seconds);
      detail.view = [Math.max(detail.view[1], t) - detail.seconds, Math.max(detail.view[1], t)];
      // Redrawing clears a selection being dragged: the new point waits for the drag to end.
      if (detail.plot.select.width === 0) detail.plot.setData(detail.data);
    }
  }

  function append(data, t, values, oldest) {
    data[0].push(t);
    values.forEach((v, i) => data[i + 1].push(v));
    let drop = 0;
    while (drop < data[0].length && data[0][drop] < oldest) drop++;
    if (drop) data.forEach((column) => column.splice(0, drop));
  }

  function openDetail(module, name, info) {
    closeDetail();
    const dialog = document.createElement("dialog");
    dialog.id = "plot-dialog";
    const title = document.createElement("h3");
    title.textContent = `${module}.${name}${info.unit ? ` [${info.unit}]` : ""}`;
    const ranges = document.createElement("div");
    ranges.className = "plot-ranges";
    for (const [label, seconds] of Object.entries(RANGES)) ranges.append(button(label, () => show(seconds)));
    const from = input("plot-from"), to = input("plot-to");
    ranges.append(" custom: ", from, " to ", to, button("Show", () => {
      const since = new Date(from.value).getTime() / 1000, until = to.value ? new Date(to.value).getTime() / 1000 : now();
      if (isNumber(since) && isNumber(until) && until > since) load(since, until, null);
    }), button("Close", closeDetail));
    const area = document.createElement("div");
    dialog.append(title, ranges, area, hint());
    document.body.append(dialog);
    dialog.addEventListener("close", closeDetail);
    dialog.showModal();
    const data = [[], [], [], []];
    const options = plotOptions(Math.min(900, window.innerWidth - 80), 320, {
      cursor: { drag: { x: true, y: false, setScale: false } },
      series: [{}, { label: "mean", stroke: COLOR, width: 1.5 },
        { label: "min", stroke: "rgba(36,87,197,.35)" }, { label: "max", stroke: "rgba(36,87,197,.35)" }],
      bands: [{ series: [3, 2], fill: "rgba(36,87,197,.12)" }],
      hooks: { setSelect: [zoom] },
    });
    // The x axis spans the range chosen, however little of it holds data.
    options.scales.x.range = (u, min, max) => (detail?.view ?? [min, max]);
    const plot = new uPlot(options, data, area);
    detail = { key: `${module}/${name}`, module, name, dialog, plot, data, seconds: 600, fetches: 0, loaded: 0,
      view: null };
    show(600);
  }

  function show(seconds) {
    const end = now();
    load(end - seconds, end, seconds);
  }

  // Fetch [since, until] and draw it; `seconds` set means "the last N seconds", which live values extend.
  async function load(since, until, seconds) {
    const current = detail;
    if (!current) return;
    current.seconds = seconds;
    current.fetches += 1;
    const columns = await history(current.module, current.name, since, until);
    if (detail !== current) return;  // closed or reopened meanwhile
    current.view = [since, until];
    columns.forEach((column, i) => current.data[i].splice(0, current.data[i].length, ...column));
    current.plot.setData(current.data);
    current.loaded += 1;
  }

  function zoom(u) {
    if (u.select.width < 2) return;
    const since = u.posToVal(u.select.left, "x"), until = u.posToVal(u.select.left + u.select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    load(since, until, null);  // finer buckets for the part chosen
  }

  function closeDetail() {
    if (!detail) return;
    const { dialog, plot } = detail;
    detail = null;
    plot.destroy();
    if (dialog.open) dialog.close();
    dialog.remove();
  }

  function arrayChart(module, name, info) {
    const box = document.createElement("div");
    box.className = "array-chart";
    box.id = `array-${module}-${name}`;
    const status = document.createElement("small");
    const plot = new uPlot(plotOptions(420, 160, {
      scales: { x: { time: false }, y: {} }, cursor: { drag: { x: true, y: false } },
      series: [{ label: "sample" }, { label: info.unit ? `${name} [${info.unit}]` : name, stroke: COLOR, width: 1 }],
    }), [[], []], box);
    async function read() {
      status.textContent = "reading…";
      try {
        const response = await fetch(`/${module}/${name}`, { headers: headers(false) });
        const body = await response.json();
        if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
        plot.setData([Array.from(body.value, (_, i) => i), body.value]);
        status.textContent = `${body.value.length} samples`;
      } catch (failure) {
        status.textContent = `cannot read: ${failure.message}`;
      }
    }
    // As wide as its cell, up to 420 px: a phone's screen is narrower than that.
    new ResizeObserver(() => {
      if (box.clientWidth > 0) plot.setSize({ width: Math.min(420, box.clientWidth), height: 160 });
    }).observe(box);
    box.append(button("Read again", read), " ", status);
    read();
    arrays[`${module}/${name}`] = plot;
    return box;
  }

  function reset() {  // the page is rebuilt (the backend came back): forget the old plots
    closeDetail();
    for (const key of Object.keys(sparklines)) { sparklines[key].plot.destroy(); delete sparklines[key]; }
    for (const key of Object.keys(arrays)) { arrays[key].destroy(); delete arrays[key]; }
  }

  function button(label, onClick) {
    const node = document.createElement("button");
    Object.assign(node, { type: "button", textContent: label });
    node.addEventListener("click", onClick);
    return node;
  }

  function input(id) {
    const node = document.createElement("input");
    Object.assign(node, { type: "datetime-local", id, step: 1 });
    return node;
  }

  function hint() {
    const node = document.createElement("small");
    node.textContent = "Drag across the plot to zoom in; choose a range to go back. Times are local.";
    return node;
  }

  return { sparkline, arrayChart, live, reset, sparklines, arrays, detail: () => detail };
})();
