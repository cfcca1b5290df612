// The dashboard page: one EventSource, one render per snapshot. No framework: the page is a
// handful of tables and uPlot charts, and everything it needs is served by the dashboard itself.
"use strict";

const STAGES = [
  ["producer", "producer"], ["ingest", "ingest API"], ["stream", "on the stream"],
  ["hotstore", "hot-store items"], ["lake", "lake trades"], ["predicted", "predicted"],
  ["dlq", "DLQ", true], ["lake_errors", "lake errors", true],
];

// What the browser tests (and a curious user in the console) can inspect.
const state = window.tradestream = { snapshots: 0, last: null, charts: {}, errors: [] };

const fmt = new Intl.NumberFormat("en-US");
const fmt1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const fmt3 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });
const text = (id, value) => { document.getElementById(id).textContent = value; };
const dash = (v, f = fmt1) => (v === null || v === undefined ? "–" : f.format(v));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function renderStages(snap) {
  const root = document.getElementById("stages");
  root.replaceChildren(...STAGES.filter(([key]) => key in snap.stages).map(([key, name, bad]) => {
    const count = snap.stages[key];
    const tile = el("div", { class: "tile" + (bad && count > 0 ? " alert" : ""), "data-stage": key },
      el("div", { class: "name" }, name),
      el("div", { class: "count" }, fmt.format(count)),
      el("div", { class: "rate" }, `${fmt1.format(snap.rates[key] || 0)} /s`));
    return tile;
  }));
}

function renderLag(snap) {
  const rows = [];
  for (const [stage, shards] of Object.entries(snap.lag_ms || {})) {
    for (const [shard, ms] of Object.entries(shards)) {
      rows.push(el("tr", {}, el("td", {}, stage), el("td", {}, shard), el("td", {}, fmt.format(ms))));
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "no consumer reports lag here")));
  document.querySelector("#lag tbody").replaceChildren(...rows);
}

function renderFigures(snap) {
  const lat = snap.latency_ms || {};
  text("p50", dash(lat.p50));
  text("p99", dash(lat.p99));
  text("latency-n", `${fmt.format(lat.n || 0)} trades written in the last minute (sampled)`);
  const model = snap.model || {};
  text("mae", dash(model.mae_bp, fmt3));
  text("baseline", dash(model.baseline_mae_bp, fmt3));
  const skill = model.skill === null || model.skill === undefined ? "" :
    ` · skill ${fmt1.format(model.skill * 100)} % vs baseline`;
  text("model-n", `${fmt.format(model.n || 0)} predictions scored, horizon ${model.horizon_s} s${skill}`);
}

function renderHealth(snap) {
  document.getElementById("health").replaceChildren(...Object.entries(snap.health || {}).map(
    ([name, up]) => el("li", { class: up ? "up" : "down", "data-component": name }, `${name} ${up ? "up" : "down"}`)));
}

function renderLatest(snap) {
  document.querySelector("#latest tbody").replaceChildren(...(snap.latest || []).map((t) => el("tr", {},
    el("td", {}, new Date(t.t).toISOString().slice(11, 23)),
    el("td", {}, t.s),
    el("td", {}, fmt3.format(t.p)),
    el("td", {}, fmt3.format(t.v)),
    el("td", {}, t.ingested_at && t.rt ? fmt.format(t.ingested_at - t.rt) : "–"),
    el("td", { class: "id" }, String(t.id).slice(0, 12)))));
}

function chartWidth(box) { return Math.max(300, box.clientWidth - 16); }

function renderCharts(snap) {
  const root = document.getElementById("charts");
  for (const [symbol, series] of Object.entries(snap.charts || {})) {
    const data = [series.x, series.price, series.predicted];
    let chart = state.charts[symbol];
    if (!chart) {
      const box = el("div", { class: "chart", "data-symbol": symbol }, el("h3", {}, symbol));
      root.append(box);
      chart = new uPlot({
        width: chartWidth(box), height: 220,
        scales: { x: { time: true } },
        axes: [{ stroke: "#8b98a5", grid: { stroke: "#2a3540" } },
               { stroke: "#8b98a5", grid: { stroke: "#2a3540" }, size: 70 }],
        series: [
          {},
          { label: "price", stroke: "#58a6ff", width: 1.5, spanGaps: true },
          { label: "predicted", stroke: "#f0883e", width: 1, spanGaps: true, dash: [4, 3],
            points: { show: true, size: 3, fill: "#f0883e" } },
        ],
      }, data, box);
      state.charts[symbol] = chart;
    } else {
      chart.setData(data);
    }
  }
}

function render(snap) {
  renderStages(snap);
  renderLag(snap);
  renderFigures(snap);
  renderHealth(snap);
  renderCharts(snap);
  renderLatest(snap);
  text("updated", `updated ${new Date(snap.at).toLocaleTimeString()}`);
}

function connect() {
  const source = new EventSource("/api/events");
  const pill = document.getElementById("connection");
  source.addEventListener("open", () => { pill.textContent = "live"; pill.className = "pill up"; });
  source.addEventListener("error", () => { pill.textContent = "reconnecting…"; pill.className = "pill down"; });
  source.addEventListener("snapshot", (event) => {
    try {
      const snap = JSON.parse(event.data);
      state.last = snap;
      state.snapshots += 1;
      render(snap);
    } catch (err) {
      state.errors.push(String(err));
      console.error("dashboard render failed", err);
    }
  });
}

window.addEventListener("resize", () => {
  for (const chart of Object.values(state.charts)) {
    chart.setSize({ width: chartWidth(chart.root.parentElement), height: 220 });
  }
});

connect();
