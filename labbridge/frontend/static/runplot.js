// The live plot of a run's points on the Runs panel (runs.js), drawn with uPlot as the history plots are:
// x is the procedure's first declared axis (the point number if it has none), one line per other numeric
// column. Points come from GET /runs/<id>/data?since=N, a page at a time: RunPlot.add appends one.
"use strict";

const RunPlot = (() => {
  const COLORS = ["#2457c5", "#b54708", "#1a7f4b", "#b42318", "#6941c6", "#0e7490"];
  // The plot on show: { run, box, plot, resize, x (column or null for the point number), ys, data, key, next }
  let shown = null;

  function numericColumns(page) {  // scalars only: an array column (a frame) is not a line
    return Object.entries(page.columns).filter(([, column]) => column.kind === "number").map(([name]) => name);
  }

  function label(name, column) {
    return column && column.unit ? `${name} [${column.unit}]` : name;
  }

  function build(box, page) {
    const numeric = numericColumns(page);
    const x = page.axes.find((axis) => numeric.includes(axis)) ?? null;
    const ys = numeric.filter((name) => name !== x);
    const series = [{ label: x ? label(x, page.columns[x]) : "point" },
      ...ys.map((name, i) => ({ label: label(name, page.columns[name]), stroke: COLORS[i % COLORS.length], width: 1.5,
        points: { show: (u, s, i0, i1) => i1 - i0 < 50 } }))];
    const width = Math.max(280, Math.min(900, box.clientWidth || 600));
    const options = { width, height: 260, series, scales: { x: { time: false } },
      axes: [{ label: x ? label(x, page.columns[x]) : "point" }, {}],
      // a constant column still gets a visible line, in the middle of a small range around it
      cursor: { drag: { x: true, y: false } } };
    options.scales.y = { range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) };
    const data = [[], ...ys.map(() => [])];
    box.replaceChildren();
    const plot = new uPlot(options, data, box);
    // As wide as the panel, up to 900 px: a phone's screen is narrower, a window may be resized.
    const resize = new ResizeObserver(() => {
      if (box.clientWidth > 0) plot.setSize({ width: Math.max(280, Math.min(900, box.clientWidth)), height: 260 });
    });
    resize.observe(box);
    return { x, ys, data, plot, resize, key: numeric.join("\n") };
  }

  // Start over for `run` (a new run shown, or the same one from its first point).
  function reset(box, run) {
    destroy();
    shown = { run, box, plot: null, x: null, ys: [], data: null, key: "", next: 0 };
  }

  // Append a page of GET /runs/<id>/data; the plot is built at the first page with columns (or new ones).
  function add(page) {
    if (!shown || page.id !== shown.run || page.since !== shown.next) return false;  // late or out of order
    shown.next = page.next;
    if (!page.point.length) return true;
    if (numericColumns(page).join("\n") !== shown.key) {
      const old = shown.plot;
      shown.resize?.disconnect();
      Object.assign(shown, build(shown.box, page));
      old?.destroy();
      if (page.since > 0) {  // the columns changed midway: read the run again from its first point
        shown.next = 0;
        return false;
      }
    }
    page.point.forEach((n, i) => {
      shown.data[0].push(shown.x ? page.values[shown.x][i] : n);
      shown.ys.forEach((name, j) => shown.data[j + 1].push(page.values[name][i]));
    });
    shown.plot.setData(shown.data);
    return true;
  }

  function destroy() {
    shown?.resize?.disconnect();
    shown?.plot?.destroy();
    shown = null;
  }

  return { reset, add, destroy, shown: () => shown, next: () => (shown ? shown.next : 0) };
})();
