// marketpipe dashboard: REST for the initial state, one Binance-style WebSocket for live updates.
"use strict";

const INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"];
const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("marketpipe.token", params.get("token"));
const TOKEN = localStorage.getItem("marketpipe.token");
const EXCHANGE = params.get("exchange") || "binance";

const state = {
  symbol: params.get("symbol") || null, // native, e.g. BTCUSDT
  interval: params.get("interval") || "1m",
  tickers: new Map(), // native -> {last, changePct}
  bases: new Map(), // native -> base asset (BTCUSDT -> BTC), from the realtime rows
  market: new Map(), // base asset -> newest market snapshot (CoinGecko), dollars preferred
  candles: 0,
  alerts: [],
  seenAlerts: new Set(),
  ws: null,
  streams: new Set(),
  // The same asset on the other venues, drawn as close-price lines over the candles.
  overlay: params.get("venues") === "1",
  overlaySeries: new Map(), // exchange -> line series
};
const OVERLAY_COLORS = ["#60a5fa", "#f59e0b", "#a78bfa", "#f472b6", "#2dd4bf"];

// ---- HTTP ------------------------------------------------------------------------------

async function api(path) {
  const headers = { "X-Marketpipe-Client": "dashboard" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(path, { headers });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// ---- formatting ------------------------------------------------------------------------

function price(value) {
  const v = Number(value);
  if (!isFinite(v)) return "–";
  if (v !== 0 && Math.abs(v) < 1) {
    return v.toLocaleString("en-US", { maximumSignificantDigits: 4, minimumSignificantDigits: 4 });
  }
  const digits = v >= 1000 ? 2 : 4;
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function pct(value) {
  const v = Number(value);
  return `${v >= 0 ? "+" : ""}${v.toFixed(2)}%`;
}
function compact(value) {
  return Number(value).toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 2 });
}
// Market cap in the units a reader scans: $1.23T, $456.7B, $12.35M; "—" when unknown.
const CAP_UNITS = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]]; // largest first
function marketCap(value) {
  if (value === null || value === undefined || !isFinite(Number(value))) return "—";
  const v = Number(value);
  let i = CAP_UNITS.findIndex(([size]) => Math.abs(v) >= size);
  if (i < 0) return `$${v.toFixed(2)}`;
  // Rounding may carry into the next unit: 999.96B reads $1.00T, never $1000.0B.
  if (i > 0 && Math.abs(v) / CAP_UNITS[i][0] >= 999.95) i -= 1;
  const scaled = v / CAP_UNITS[i][0];
  return `$${scaled.toFixed(Math.abs(scaled) >= 99.995 ? 1 : 2)}${CAP_UNITS[i][1]}`;
}
function rank(value) {
  return value === null || value === undefined ? "—" : `#${value}`;
}
function clock(iso) {
  return new Date(iso).toISOString().replace("T", " ").slice(5, 19);
}

// ---- chart -----------------------------------------------------------------------------

const LC = window.LightweightCharts;
const chartBox = document.getElementById("chart");
const chart = LC.createChart(chartBox, {
  autoSize: true,
  layout: {
    background: { type: "solid", color: "#121722" },
    textColor: "#9aa4b8",
    fontFamily: "Inter, Segoe UI, system-ui, sans-serif",
    panes: { separatorColor: "#232b3d" },
  },
  grid: { vertLines: { color: "#1b2232" }, horzLines: { color: "#1b2232" } },
  rightPriceScale: { borderColor: "#232b3d" },
  timeScale: { borderColor: "#232b3d", timeVisible: true, secondsVisible: false },
  crosshair: { mode: LC.CrosshairMode.Normal },
});
const candleSeries = chart.addSeries(LC.CandlestickSeries, {
  upColor: "#22c55e", downColor: "#ef4444", borderVisible: false,
  wickUpColor: "#22c55e", wickDownColor: "#ef4444",
});
const volumeSeries = chart.addSeries(LC.HistogramSeries, {
  priceFormat: { type: "volume" }, priceLineVisible: false, lastValueVisible: false,
}, 1);
chart.panes()[0].setStretchFactor(3);
chart.panes()[1].setStretchFactor(1);

function toBar(k) {
  // Binance kline row or WS kline object -> chart bars.
  const [t, o, h, l, c, v] = Array.isArray(k) ? k : [k.t, k.o, k.h, k.l, k.c, k.v];
  const up = Number(c) >= Number(o);
  return {
    candle: { time: t / 1000, open: +o, high: +h, low: +l, close: +c },
    volume: { time: t / 1000, value: +v, color: up ? "rgba(34,197,94,.45)" : "rgba(239,68,68,.45)" },
  };
}

function showOhlc(bar) {
  if (!bar) return;
  const c = bar.candle;
  document.getElementById("ohlc").innerHTML =
    `O <b>${price(c.open)}</b> H <b>${price(c.high)}</b> L <b>${price(c.low)}</b> ` +
    `C <b>${price(c.close)}</b> Vol <b>${compact(bar.volume.value)}</b>`;
}

let lastBar = null;
async function loadChart() {
  if (!state.symbol) return;
  const rows = await api(
    `/api/v3/uiKlines?symbol=${state.symbol}&interval=${state.interval}&limit=500&exchange=${EXCHANGE}`,
  );
  const bars = rows.map(toBar);
  candleSeries.setData(bars.map((b) => b.candle));
  volumeSeries.setData(bars.map((b) => b.volume));
  state.candles = bars.length;
  lastBar = bars[bars.length - 1] || null;
  showOhlc(lastBar);
  // Few bars (a fresh live run): keep a sensible bar width instead of stretching them.
  if (bars.length >= 20) chart.timeScale().fitContent();
  else chart.timeScale().setVisibleLogicalRange({ from: bars.length - 40, to: bars.length + 2 });
  document.getElementById("chart").dataset.candles = String(bars.length);
  document.getElementById("chart").dataset.symbol = state.symbol;
  await loadOverlay();
}

// The asset of the chart on every other venue that trades it (dollar quotes are one asset),
// from /api/v1/market/compare, each as a line of 1m closes; refreshed with the chart.
async function loadOverlay() {
  for (const series of state.overlaySeries.values()) chart.removeSeries(series);
  state.overlaySeries.clear();
  const legend = document.getElementById("overlay-legend");
  const box = document.getElementById("chart");
  legend.innerHTML = "";
  box.dataset.overlay = "";
  document.getElementById("venues-toggle").classList.toggle("active", state.overlay);
  const ticker = state.tickers.get(state.symbol);
  if (!state.overlay || !ticker || !ticker.symbol) return;
  let compare;
  try {
    compare = await api(`/api/v1/market/compare?base=${ticker.symbol.split("-")[0]}`);
  } catch {
    return; // no other venue has traded it
  }
  const drawn = [];
  for (const venue of compare.venues) {
    if (venue.exchange === EXCHANGE) continue;
    const rows = await api(
      `/api/v3/uiKlines?symbol=${venue.symbol.replace("-", "")}&interval=${state.interval}` +
        `&limit=500&exchange=${venue.exchange}`,
    );
    const color = OVERLAY_COLORS[drawn.length % OVERLAY_COLORS.length];
    const series = chart.addSeries(LC.LineSeries, {
      color, lineWidth: 1, priceLineVisible: false, title: venue.exchange,
    });
    series.setData(rows.map((k) => ({ time: k[0] / 1000, value: +k[4] })));
    state.overlaySeries.set(venue.exchange, series);
    drawn.push(`${venue.exchange}:${rows.length}`);
    const off = venue.vs_others_bps === null ? "" : ` ${venue.vs_others_bps.toFixed(1)} bps`;
    const item = document.createElement("span");
    item.dataset.venue = venue.exchange;
    item.style.color = color;
    item.textContent = `● ${venue.exchange} ${price(venue.last_price)}${off}`;
    legend.appendChild(item);
  }
  box.dataset.overlay = drawn.join(",");
}

chart.subscribeCrosshairMove((param) => {
  const c = param.seriesData && param.seriesData.get(candleSeries);
  const v = param.seriesData && param.seriesData.get(volumeSeries);
  if (c) showOhlc({ candle: c, volume: v || { value: 0 } });
  else showOhlc(lastBar);
});

// ---- watchlist -------------------------------------------------------------------------

function renderSymbols() {
  const list = document.getElementById("symbols");
  list.innerHTML = "";
  for (const [symbol, t] of [...state.tickers.entries()].sort()) {
    const li = document.createElement("li");
    li.dataset.symbol = symbol;
    li.className = symbol === state.symbol ? "active" : "";
    const dir = t.changePct >= 0 ? "up" : "down";
    const snapshot = state.market.get(state.bases.get(symbol));
    li.innerHTML = `<span class="sym">${symbol}</span><span>${price(t.last)}</span>` +
      `<span class="${dir}">${pct(t.changePct)}</span>` +
      `<span class="cap" data-testid="market-cap">${marketCap(snapshot && snapshot.market_cap)}</span>` +
      `<span class="rank" data-testid="market-rank">${rank(snapshot && snapshot.market_cap_rank)}</span>`;
    li.addEventListener("click", () => selectSymbol(symbol));
    list.appendChild(li);
  }
  renderTitle();
}

function renderTitle() {
  const t = state.tickers.get(state.symbol);
  document.getElementById("title-symbol").textContent = state.symbol || "–";
  document.getElementById("title-price").textContent = t ? price(t.last) : "–";
  const change = document.getElementById("title-change");
  change.textContent = t ? pct(t.changePct) : "";
  change.className = `change ${t && t.changePct < 0 ? "down" : "up"}`;
}

// Market cap and rank per coin from /api/v1/market/snapshots; a backend without market data
// (503) or a failed call leaves the watchlist as it is, with "—" for the unknown.
async function loadMarket() {
  let rows;
  try {
    rows = await api("/api/v1/market/snapshots");
  } catch {
    return;
  }
  const market = new Map();
  for (const r of rows) {
    const held = market.get(r.asset);
    if (!held || (held.vs_currency !== "USD" && r.vs_currency === "USD")) market.set(r.asset, r);
  }
  state.market = market;
}

async function loadTickers() {
  const [rows] = await Promise.all([
    api(`/api/v1/market/realtime?exchange=${EXCHANGE}`), loadMarket(),
  ]);
  for (const r of rows) {
    state.tickers.set(r.native_symbol, {
      last: r.last_price, changePct: r.change_pct_24h, symbol: r.symbol,
    });
    state.bases.set(r.native_symbol, r.symbol.split("-")[0]);
  }
  if (!state.symbol && rows.length) {
    const top = [...rows].sort((a, b) => b.quote_volume_24h - a.quote_volume_24h)[0];
    state.symbol = top.native_symbol;
  }
  renderSymbols();
}

async function selectSymbol(symbol) {
  if (symbol === state.symbol) return;
  state.symbol = symbol;
  renderSymbols();
  await loadChart();
  resubscribe();
}

function renderIntervals() {
  const box = document.getElementById("intervals");
  box.innerHTML = "";
  for (const iv of INTERVALS) {
    const b = document.createElement("button");
    b.textContent = iv;
    b.dataset.interval = iv;
    b.className = iv === state.interval ? "active" : "";
    b.addEventListener("click", async () => {
      state.interval = iv;
      renderIntervals();
      await loadChart();
      resubscribe();
    });
    box.appendChild(b);
  }
}

// ---- alerts ----------------------------------------------------------------------------

function describe(a) {
  if (a.kind === "whale_trade") {
    const d = JSON.parse(a.details || "{}");
    return `${d.side || ""} ${d.qty ?? ""} @ ${price(d.price)} · $${compact(a.value)}`;
  }
  if (a.kind === "volume_spike") return `1m quote volume $${compact(a.value)}`;
  if (a.kind === "price_spike") return `1m move ${(a.value * 100).toFixed(2)}%`;
  if (a.kind === "venue_divergence") {
    const d = JSON.parse(a.details || "{}");
    return `${a.value.toFixed(1)} bps off the other venues for ${d.minutes ?? "?"} min`;
  }
  return String(a.value);
}

function addAlerts(alerts, fresh) {
  for (const a of alerts) {
    if (state.seenAlerts.has(a.alert_id)) continue;
    state.seenAlerts.add(a.alert_id);
    state.alerts.push({ ...a, fresh });
  }
  state.alerts.sort((x, y) => (x.ts < y.ts ? 1 : -1));
  state.alerts = state.alerts.slice(0, 200);
  const list = document.getElementById("alerts");
  list.innerHTML = state.alerts.length ? "" : '<li class="empty">No alerts yet.</li>';
  for (const a of state.alerts) {
    const li = document.createElement("li");
    li.dataset.kind = a.kind;
    if (a.fresh) li.className = "fresh";
    a.fresh = false;
    li.innerHTML = `<div class="alert-top"><span><span class="badge ${a.kind}">` +
      `${a.kind.replace("_", " ")}</span> <span class="alert-sym">${a.symbol}</span></span>` +
      `<span class="alert-time">${clock(a.ts)}</span></div>` +
      `<div class="alert-body">${describe(a)}</div>`;
    list.appendChild(li);
  }
  document.getElementById("alert-count").textContent = state.alerts.length ? `(${state.alerts.length}) · times UTC` : "";
}

// ---- health strip ----------------------------------------------------------------------

async function loadHealth() {
  const h = await api("/api/v1/system/pipeline");
  document.getElementById("h-rate").textContent = compact(h.messages_per_s);
  document.getElementById("h-lag").textContent = h.lag_s == null ? "–" :
    h.lag_s > 3600 ? `${(h.lag_s / 3600).toFixed(0)} h` : `${h.lag_s.toFixed(1)} s`;
  document.getElementById("h-conn").textContent = h.connections;
  document.getElementById("h-complete").textContent = `${(h.completeness * 100).toFixed(3)}%`;
  document.getElementById("h-dead").textContent = h.dead_letters;
  showProblems(h.health || { status: "ok", problems: [] });
}

// Health degraded: the strip says so and names each component, with the reason.
function showProblems(health) {
  const problems = health.problems || [];
  const degraded = health.status !== "ok" || problems.length > 0;
  const names = [...new Set(problems.map((p) => p.component))];
  document.getElementById("h-state").classList.toggle("degraded", degraded);
  document.getElementById("h-dot").className = `dot ${degraded ? "down" : "live"}`;
  document.getElementById("h-status").textContent =
    degraded ? `degraded: ${names.join(", ") || health.status}` : "ok";
  const banner = document.getElementById("health-problems");
  banner.replaceChildren(...problems.map((p) => {
    const line = document.createElement("div");
    line.dataset.component = p.component;
    const name = document.createElement("span");
    name.className = "component";
    name.textContent = p.component;
    line.append(name, document.createTextNode(p.reason));
    return line;
  }));
  banner.hidden = problems.length === 0;
  document.body.classList.toggle("troubled", !banner.hidden);
  if (!banner.hidden) {
    document.body.style.setProperty("--problems-h", `${banner.offsetHeight}px`);
  }
}

// ---- live stream -----------------------------------------------------------------------

function wantedStreams() {
  const s = new Set(["alerts"]);
  for (const symbol of state.tickers.keys()) s.add(`${symbol.toLowerCase()}@ticker`);
  if (state.symbol) s.add(`${state.symbol.toLowerCase()}@kline_${state.interval}`);
  return s;
}

let requestId = 1;
function resubscribe() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const wanted = wantedStreams();
  const drop = [...state.streams].filter((s) => !wanted.has(s));
  const add = [...wanted].filter((s) => !state.streams.has(s));
  if (drop.length) ws.send(JSON.stringify({ method: "UNSUBSCRIBE", params: drop, id: requestId++ }));
  if (add.length) ws.send(JSON.stringify({ method: "SUBSCRIBE", params: add, id: requestId++ }));
  state.streams = wanted;
}

function setStreamState(live, text) {
  document.getElementById("ws-dot").className = `dot ${live ? "live" : "down"}`;
  document.getElementById("ws-state").textContent = text;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ streams: "", exchange: EXCHANGE });
  if (TOKEN) query.set("token", TOKEN);
  const ws = new WebSocket(`${proto}://${location.host}/stream?${query}`);
  state.ws = ws;
  state.streams = new Set();
  ws.onopen = () => { setStreamState(true, "live"); resubscribe(); };
  ws.onclose = () => { setStreamState(false, "reconnecting"); setTimeout(connect, 2000); };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (!msg.stream) return;
    const d = msg.data;
    if (msg.stream === "alerts") addAlerts([d], true);
    else if (msg.stream.endsWith("@ticker")) {
      state.tickers.set(d.s, { last: +d.c, changePct: +d.P });
      renderSymbols();
    } else if (msg.stream.includes("@kline_") && d.s === state.symbol && d.k.i === state.interval) {
      const bar = toBar(d.k);
      candleSeries.update(bar.candle);
      volumeSeries.update(bar.volume);
      lastBar = bar;
      showOhlc(bar);
      const t = state.tickers.get(d.s);
      if (t) { t.last = +d.k.c; renderSymbols(); }
    }
  };
}

// ---- start -----------------------------------------------------------------------------

async function start() {
  renderIntervals();
  document.getElementById("venues-toggle").addEventListener("click", async () => {
    state.overlay = !state.overlay;
    await loadOverlay();
  });
  await loadTickers();
  await loadChart();
  addAlerts(await api("/api/v1/analytics/alerts?limit=100"), false);
  await loadHealth();
  connect();
  setInterval(() => loadHealth().catch(() => {}), 2000);
  setInterval(() => loadTickers().then(resubscribe).catch(() => {}), 15000);
  document.body.dataset.ready = "true";
}

window.dashboard = {
  state, chart, candleSeries, overlaySeries: state.overlaySeries, loadTickers, marketCap,
};
start().catch((error) => {
  console.error(error);
  document.getElementById("title-symbol").textContent = `error: ${error.message}`;
});
