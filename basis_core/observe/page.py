"""The live status page: one self-contained HTML document (inline CSS and JS, inline SVG plots;
no external script, font, image or request but its own /events stream).

`render` puts the samples so far in the page (a JSON script element), so it shows the run at
once; the script then follows /events (server-sent events, one sample each) and redraws:
engine and venue states over time, the counters, positions and working orders, recent
transitions and rejections, realized PnL, fees and residual exposure.
"""

from __future__ import annotations

from html import escape
from typing import Any

import orjson

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>basis: RUN_ID</title>
<style>
body{font:13px/1.35 system-ui,sans-serif;margin:12px;color:#222;background:#fafafa}
h1{font-size:17px;margin:0 0 6px}h2{font-size:14px;margin:12px 0 4px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:8px}
table{border-collapse:collapse;width:100%}td,th{padding:2px 6px;text-align:left;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.st{display:inline-block;padding:1px 6px;border-radius:3px;color:#fff;font-weight:600}
.kv span{display:inline-block;margin-right:14px}.kv b{font-variant-numeric:tabular-nums}
svg{width:100%;height:160px;background:#fff}
.muted{color:#777}
</style></head><body>
"""

_BODY = """<h1>basis run <span id="run"></span> <span id="engine-state" class="st"></span>
<span class="muted" id="conn">loading</span></h1>
<div class="card kv" id="counters"></div>
<div class="grid">
<div class="card"><h2>States over time</h2><svg id="timeline" viewBox="0 0 600 160"></svg></div>
<div class="card"><h2>Venues</h2><table id="venues"></table><h2>Positions by state</h2><table id="positions"></table></div>
<div class="card"><h2>Realized PnL and fees (USDT)</h2><svg id="pnl" viewBox="0 0 600 160"></svg></div>
<div class="card"><h2>Residual exposure (USDT)</h2><svg id="residual" viewBox="0 0 600 160"></svg></div>
<div class="card"><h2>Working orders</h2><table id="working"></table></div>
<div class="card"><h2>Open positions</h2><table id="open"></table></div>
<div class="card"><h2>Recent transitions</h2><table id="transitions"></table></div>
<div class="card"><h2>Rejections</h2><table id="rejections"></table></div>
</div>
<p class="muted">updates received: <span id="updates">0</span></p>
"""

_SCRIPT = r"""<script>
"use strict";
const init = JSON.parse(document.getElementById("init").textContent);
let latest = init.latest, points = init.history, updates = 0;
const COLOURS = {NORMAL:"#2ca02c",UP:"#2ca02c",DEGRADED:"#bcbd22",THROTTLED:"#bcbd22",
  SUSPECT:"#ff7f0e",PROTECTIVE:"#ff7f0e",QUARANTINED:"#9467bd",RECONCILING:"#17becf",
  UNWINDING:"#e377c2",HALTED:"#d62728",DOWN:"#d62728"};
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const fmt = (x, d=2) => Number(x).toLocaleString("en-US", {maximumFractionDigits: d, minimumFractionDigits: d});
function rows(id, head, body) {
  $(id).innerHTML = "<tr>" + head.map(h => "<th>" + esc(h) + "</th>").join("") + "</tr>" +
    (body.length ? body.map(r => "<tr>" + r.map(c => typeof c === "number" ?
      '<td class="n">' + esc(fmt(c, Number.isInteger(c) ? 0 : 4)) + "</td>" : "<td>" + esc(c) + "</td>").join("") + "</tr>").join("")
      : '<tr><td class="muted" colspan="' + head.length + '">none</td></tr>');
}
function badge(s) { return '<span class="st" style="background:' + (COLOURS[s] || "#555") + '">' + esc(s) + "</span>"; }
function lines(id, series) {
  const svg = $(id), W = 600, H = 160, P = 34;
  if (points.length < 1) { svg.innerHTML = ""; return; }
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1e-9);
  let lo = 0, hi = 0;
  for (const p of points) for (const s of series) { lo = Math.min(lo, p[s.key]); hi = Math.max(hi, p[s.key]); }
  if (hi - lo < 1e-9) hi = lo + 1;
  const x = t => P + (t - t0) / (t1 - t0) * (W - P - 6), y = v => H - 14 - (v - lo) / (hi - lo) * (H - 24);
  let out = '<line x1="' + P + '" x2="' + W + '" y1="' + y(0) + '" y2="' + y(0) + '" stroke="#ccc"/>' +
    '<text x="2" y="12" font-size="10">' + esc(fmt(hi)) + '</text><text x="2" y="' + (H - 16) + '" font-size="10">' + esc(fmt(lo)) + "</text>" +
    '<text x="' + P + '" y="' + (H - 2) + '" font-size="10">t=' + esc(fmt(t0, 1)) + ' s</text><text x="' + (W - 70) + '" y="' + (H - 2) + '" font-size="10">t=' + esc(fmt(t1, 1)) + " s</text>";
  series.forEach((s, i) => {
    out += '<polyline fill="none" stroke-width="3" stroke-linejoin="round" stroke="' + s.colour + '" points="' + points.map(p => x(p.t).toFixed(1) + "," + y(p[s.key]).toFixed(1)).join(" ") + '"/>' +
      '<text x="' + (P + 6 + i * 110) + '" y="22" font-size="11" fill="' + s.colour + '">' + esc(s.label) + "</text>";
  });
  svg.innerHTML = out;
}
function timeline() {
  const svg = $("timeline"), W = 600, P = 90;
  if (!points.length) { svg.innerHTML = ""; return; }
  const names = ["engine"].concat(Object.keys(points[points.length - 1].venues));
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1e-9), rh = Math.min(24, 150 / names.length);
  const x = t => P + (t - t0) / (t1 - t0) * (W - P - 4);
  let out = "";
  names.forEach((n, r) => {
    out += '<text x="2" y="' + (r * rh + rh * 0.7 + 4) + '" font-size="11">' + esc(n) + "</text>";
    for (let i = 0; i < points.length; i++) {
      const p = points[i], s = n === "engine" ? p.engine : p.venues[n];
      const a = x(p.t), b = i + 1 < points.length ? x(points[i + 1].t) : W - 4;
      out += '<rect x="' + a.toFixed(1) + '" y="' + (r * rh + 4) + '" width="' + Math.max(1, b - a).toFixed(1) + '" height="' + (rh - 3) + '" shape-rendering="crispEdges" fill="' + (COLOURS[s] || "#555") + '"><title>' + esc(n + " " + s) + "</title></rect>";
    }
  });
  svg.innerHTML = out;
}
function draw() {
  $("updates").textContent = updates;
  if (!latest) { $("engine-state").textContent = "waiting for the first sample"; return; }
  const c = latest.counters;
  $("engine-state").outerHTML = badge(latest.engine.state).replace('class="st"', 'class="st" id="engine-state"');
  $("counters").innerHTML = [["t", fmt(latest.t_s, 1) + " s"], ["events", fmt(c.events, 0)], ["decisions", fmt(c.decisions, 0)],
    ["signals", fmt(c.signals_seen, 0)], ["orders", fmt(c.orders_submitted, 0)], ["filled", fmt(c.orders_filled, 0)],
    ["hedged", fmt(c.hedges_completed, 0)], ["unwinds", fmt(c.unwinds, 0)], ["realized PnL", fmt(latest.realized_pnl_usdt)],
    ["fees", fmt(latest.fees_usdt)], ["residual", fmt(latest.residual_usdt)], ["lag", fmt(latest.lag_s * 1000, 1) + " ms"]]
    .map(([k, v]) => '<span>' + esc(k) + ' <b id="c-' + k.replace(/ /g, "-") + '">' + esc(v) + "</b></span>").join("");
  $("venues").innerHTML = "<tr><th>venue</th><th>state</th></tr>" + Object.entries(latest.venues).map(([v, s]) => "<tr><td>" + esc(v) + "</td><td>" + badge(s) + "</td></tr>").join("");
  rows("positions", ["state", "count"], Object.entries(latest.positions));
  rows("working", ["coid", "venue", "side", "qty", "price", "filled", "state", "purpose"],
    latest.working.map(o => [o.coid, o.venue, o.side, o.qty, o.price === null ? "market" : o.price, o.filled, o.state, o.purpose]));
  rows("open", ["id", "strategy", "buy", "sell", "qty", "state"], latest.open_positions.map(p => [p.id, p.strategy, p.buy, p.sell, p.qty, p.state]));
  rows("transitions", ["t (s)", "machine", "from", "to", "cause"], latest.transitions.slice().reverse().map(
    r => [fmt((r.t_ns - latest.t_ns) / 1e9 + latest.t_s, 2), r.machine, r.from, r.to, r.cause]));
  rows("rejections", ["t (s)", "reason", "count"], latest.rejections.slice().reverse().map(
    r => [fmt((r.t_ns - latest.t_ns) / 1e9 + latest.t_s, 2), r.reason, r.count]));
  timeline();
  lines("pnl", [{key: "pnl", label: "realized PnL", colour: "#1f77b4"}, {key: "fees", label: "fees", colour: "#ff7f0e"}]);
  lines("residual", [{key: "residual", label: "residual", colour: "#d62728"}]);
}
$("run").textContent = init.run;
draw();
const es = new EventSource("/events");
es.addEventListener("open", () => { $("conn").textContent = "live"; });
es.addEventListener("error", () => { $("conn").textContent = "reconnecting"; });
es.addEventListener("sample", ev => {
  latest = JSON.parse(ev.data); updates += 1;
  points.push({t: latest.t_s, engine: latest.engine.state, venues: latest.venues, pnl: latest.realized_pnl_usdt,
    fees: latest.fees_usdt, residual: latest.residual_usdt, events: latest.counters.events});
  if (points.length > 2000) points.shift();
  draw();
});
</script></body></html>
"""


def render(run_id: str, latest: dict[str, Any] | None, history: list[dict[str, Any]]) -> str:
    """The page, with the samples so far inside it."""
    data = orjson.dumps({"run": run_id, "latest": latest, "history": history}).decode()
    data = data.replace("</", "<\\/")  # nothing in the data can close the script element
    return (
        _HEAD.replace("RUN_ID", escape(run_id))
        + _BODY
        + f'<script id="init" type="application/json">{data}</script>\n'
        + _SCRIPT
    )
