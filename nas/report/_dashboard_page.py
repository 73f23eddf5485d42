"""The dashboard's page: plain HTML, CSS and a script that polls ``/api/state`` and draws SVG (no library)."""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hwnas dashboard</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;
color:#222}
h1{margin:.2em 0;font-size:1.5em}.small{color:#666;font-size:.9em}
.bar{background:#eee;border-radius:4px;height:12px;overflow:hidden;margin:.4em 0}.bar div{background:#2a7ae2;height:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:1em;margin:1em 0}
.panel{border:1px solid #ddd;border-radius:6px;padding:.5em}.panel h2{font-size:1em;margin:.2em 0 .4em}
svg{width:100%;height:auto;display:block}.scroll{overflow-x:auto;max-height:420px;overflow-y:auto}
table{border-collapse:collapse;font-size:.9em;width:100%}th,td{border-bottom:1px solid #eee;padding:.2em .5em;text-align:right}
th{position:sticky;top:0;background:#f6f6f6}td.l,th.l{text-align:left}tr.front td{font-weight:600;color:#b00}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.3em .7em}
</style></head><body>
<h1>hwnas dashboard: <span id="name">…</span></h1>
<p><span id="done">0</span> of <span id="planned">?</span> trials done
(<span id="running">0</span> running, <span id="failed">0</span> failed) · <span id="status">connecting…</span></p>
<div class="bar"><div id="progress" style="width:0%"></div></div>
<p class="small" id="note"></p>
<div class="grid">
 <div class="panel"><h2>Pareto front</h2><div id="front"></div></div>
 <div class="panel"><h2>Hypervolume over trials</h2><div id="hv"></div></div>
 <div class="panel"><h2>Hypervolume over energy spent</h2><div id="hve"></div></div>
</div>
<div class="panel"><h2>Trials (latest first)</h2><div class="scroll"><table id="trials"></table></div></div>
<script>
const W = 360, H = 260, M = {l: 52, r: 12, t: 10, b: 40};
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const fmt = (v) => v === null || v === undefined ? "" : Number(v).toPrecision(4).replace(/\\.?0+$/, "").replace(/\\.?0+e/, "e");
function ticks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
}
function chart(points, opts) {
  if (!points.length) return '<p class="small">' + esc(opts.empty || "no data yet") + "</p>";
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = opts.y0 ?? Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) { x1 = x0 + 1; } if (y1 === y0) { y1 = y0 + 1; }
  const px = (x) => M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r), py = (y) => H - M.b - (y - y0) / (y1 - y0) * (H - M.t - M.b);
  let s = `<svg viewBox="0 0 ${W} ${H}" role="img"><rect x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>`;
  for (const t of ticks(x0, x1, 4)) s += `<text x="${px(t)}" y="${H - M.b + 14}" font-size="10" text-anchor="middle">${fmt(t)}</text>`;
  for (const t of ticks(y0, y1, 4)) s += `<text x="${M.l - 4}" y="${py(t) + 3}" font-size="10" text-anchor="end">${fmt(t)}</text>`;
  s += `<text x="${(M.l + W - M.r) / 2}" y="${H - 6}" font-size="11" text-anchor="middle">${esc(opts.xlabel)}</text>`;
  s += `<text transform="translate(12 ${(H - M.b + M.t) / 2}) rotate(-90)" font-size="11" text-anchor="middle">${esc(opts.ylabel)}</text>`;
  if (opts.line) {
    let d = "", prev = null;
    for (const p of points) { d += prev === null ? `M${px(p.x)},${py(p.y)}` : `H${px(p.x)}V${py(p.y)}`; prev = p; }
    s += `<path d="${d}" fill="none" stroke="#2a7ae2" stroke-width="1.5"/>`;
  } else {
    for (const p of points.filter((p) => !p.front)) s += `<circle cx="${px(p.x)}" cy="${py(p.y)}" r="2.5" fill="#aaa"/>`;
    for (const p of points.filter((p) => p.front)) {
      s += `<circle cx="${px(p.x)}" cy="${py(p.y)}" r="4" fill="#d62728"/>`;
      s += `<text x="${px(p.x) + 5}" y="${py(p.y) - 4}" font-size="9">${p.id}</text>`;
    }
  }
  return s + "</svg>";
}
function render(st) {
  document.getElementById("name").textContent = st.name || "";
  document.getElementById("done").textContent = st.done ?? 0;
  document.getElementById("planned").textContent = st.planned ?? "?";
  document.getElementById("running").textContent = st.running ?? 0;
  document.getElementById("failed").textContent = st.failed ?? 0;
  document.getElementById("status").textContent = st.finished ? "search finished" : (st.waiting ? "waiting" : "searching");
  document.getElementById("progress").style.width = st.planned ? Math.min(100, 100 * st.done / st.planned) + "%" : "0%";
  const ref = st.reference ? Object.entries(st.reference).map(([k, v]) => k + " " + fmt(v)).join(", ") : "";
  document.getElementById("note").textContent = st.waiting ? st.waiting :
    "Hypervolume is the share of the box from the best corner to the reference point (" + ref + "; " + (st.reference_source || "") + ") that the front dominates.";
  const obj = st.objectives || [];
  const front = new Set(st.front || []);
  if (obj.length) {
    const [a, b] = obj.length > 1 ? [obj[1], obj[0]] : [{name: "#", label: "Trial", factor: 1}, obj[0]];
    const pts = (st.trials || []).filter((t) => t.state === "COMPLETE" && t.values[b.name] !== null)
      .map((t) => ({x: a.name === "#" ? t.number : t.values[a.name] * a.factor, y: t.values[b.name] * b.factor, id: t.number, front: front.has(t.number)}))
      .filter((p) => p.x !== null && !Number.isNaN(p.x));
    document.getElementById("front").innerHTML = chart(pts, {xlabel: a.label, ylabel: b.label});
  }
  const hv = st.hypervolume || [];
  document.getElementById("hv").innerHTML = chart(hv.map((h) => ({x: h.trial, y: h.share})), {xlabel: "Finished trials", ylabel: "Hypervolume (share)", line: true, y0: 0});
  const he = hv.filter((h) => h.energy_kwh !== null);
  document.getElementById("hve").innerHTML = chart(he.map((h) => ({x: h.energy_kwh * 1000, y: h.share})), {xlabel: "Energy spent (Wh)", ylabel: "Hypervolume (share)", line: true, y0: 0, empty: "energy per trial not recorded"});
  const head = "<tr><th class=l>trial</th><th class=l>state</th>" + obj.map((o) => `<th>${esc(o.label)}</th>`).join("") + "<th>duration (s)</th></tr>";
  const rows = (st.trials || []).slice().reverse().slice(0, 300).map((t) =>
    `<tr data-trial="${t.number}"${front.has(t.number) ? ' class="front"' : ""}><td class=l>${t.number}</td><td class=l>${esc(t.state)}${t.error ? " · " + esc(t.error.slice(0, 80)) : ""}</td>` +
    obj.map((o) => `<td>${t.values[o.name] === null ? "" : fmt(t.values[o.name] * o.factor)}</td>`).join("") + `<td>${fmt(t.duration_s)}</td></tr>`);
  document.getElementById("trials").innerHTML = head + rows.join("");
}
async function poll() {
  try {
    const r = await fetch("api/state", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    document.getElementById("status").textContent = "dashboard server unreachable";
  }
  setTimeout(poll, 2000);
}
poll();
</script>
</body></html>
"""
