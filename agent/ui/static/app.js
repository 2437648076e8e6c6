// The Sluice service map: polls /api/graph and /api/flows with the
// filters of the form and draws the graph as SVG, namespaces as columns.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COL_W = 240, ROW_H = 90, TOP = 48, R = 18;
let selected = null;

function query() {
  const q = new URLSearchParams();
  for (const el of document.getElementById("filters").elements) {
    if (el.name && el.value.trim() !== "") q.set(el.name, el.value.trim());
  }
  return q.toString();
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// layout places reserved and identity nodes in the first column ("outside
// namespaces"), then one column per namespace, each top to bottom: clients
// (nodes nothing talks to), services, then the rest.
function layout(g) {
  const called = new Set(g.edges.map(e => e.target));
  const rank = n => (n.kind === "service" ? 1 : called.has(n.id) ? 2 : 0);
  const order = (a, b) => rank(a) - rank(b) || a.label.localeCompare(b.label);
  const cols = [];
  const outside = g.nodes.filter(n => !n.namespace).sort(order);
  if (outside.length) cols.push({ title: "outside namespaces", nodes: outside });
  for (const ns of g.namespaces) {
    cols.push({ title: "namespace " + ns, nodes: g.nodes.filter(n => n.namespace === ns).sort(order) });
  }
  const pos = {};
  cols.forEach((c, i) => c.nodes.forEach((n, j) => {
    // Odd columns sit half a row lower, so an edge that crosses a column
    // passes between its nodes.
    pos[n.id] = { x: i * COL_W + COL_W / 2 + 10, y: TOP + 40 + j * ROW_H + (i % 2) * ROW_H / 2 };
  }));
  return { cols, pos };
}

function edgeLabel(e) {
  const parts = [];
  if (e.forwarded) parts.push(e.forwarded + " fwd");
  if (e.audit) parts.push(e.audit + " audit");
  if (e.dropped) parts.push(e.dropped + " drop");
  return parts.join(" · ");
}

function draw(g) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const { cols, pos } = layout(g);
  const rows = Math.max(1, ...cols.map(c => c.nodes.length));
  const width = Math.max(600, cols.length * COL_W + 20), height = TOP + rows * ROW_H + ROW_H / 2 + 20;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = height + "px";
  const defs = el("defs", {}, svg);
  for (const e of g.edges) {
    const id = "arrow-" + e.color.slice(1);
    if (document.getElementById(id)) continue;
    const m = el("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: e.color }, m);
  }
  cols.forEach((c, i) => {
    el("rect", { class: "ns-box", x: i * COL_W + 20, y: 8, width: COL_W - 20, height: height - 16, rx: 8 }, svg);
    el("text", { class: "ns-title", x: i * COL_W + 30, y: 28 }, svg).textContent = c.title;
  });
  const edges = el("g", { id: "edges" }, svg);
  for (const e of g.edges) drawEdge(edges, e, pos[e.source], pos[e.target]);
  const nodes = el("g", { id: "nodes" }, svg);
  for (const n of g.nodes) {
    const p = pos[n.id];
    const ng = el("g", { class: "node " + n.kind + (selected && selected.id === n.id ? " selected" : ""),
      "data-id": n.id, "data-kind": n.kind, transform: `translate(${p.x},${p.y})` }, nodes);
    el("title", {}, ng).textContent = `${n.id} (${n.kind}, ${n.flows} flows)`;
    el("circle", { r: R }, ng);
    el("text", { y: R + 15 }, ng).textContent = n.label;
    if (n.pods && n.pods.length > 1) el("text", { class: "pods", y: 4 }, ng).textContent = n.pods.length;
    ng.addEventListener("click", () => select(n));
  }
  document.getElementById("counts").textContent = `${g.nodes.length} nodes, ${g.edges.length} edges, ${g.flows} flows`;
}

// drawEdge draws a curve from a to b that bends to its left (up for an
// edge going right), so a → b and b → a stay apart, with its counts beside
// the curve; a loop for a node talking to itself.
function drawEdge(parent, e, a, b) {
  const eg = el("g", { class: "edge", "data-source": e.source, "data-target": e.target,
    "data-verdict": e.verdict, "data-flows": e.flows }, parent);
  el("title", {}, eg).textContent = `${e.source} → ${e.target}: ${edgeLabel(e)} (${(e.ports || []).join(", ")})`;
  let d, lx, ly, anchor = "middle";
  if (e.source === e.target) {
    d = `M${a.x - 8},${a.y - R} C${a.x - 40},${a.y - 70} ${a.x + 40},${a.y - 70} ${a.x + 8},${a.y - R}`;
    lx = a.x; ly = a.y - 62;
  } else {
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const ux = dx / len, uy = dy / len, nx = uy, ny = -ux, bend = Math.min(60, len / 4);
    const sx = a.x + ux * R, sy = a.y + uy * R, tx = b.x - ux * (R + 2), ty = b.y - uy * (R + 2);
    const cx = (sx + tx) / 2 + nx * bend, cy = (sy + ty) / 2 + ny * bend;
    d = `M${sx},${sy} Q${cx},${cy} ${tx},${ty}`;
    lx = (sx + 2 * cx + tx) / 4 + nx * 8; ly = (sy + 2 * cy + ty) / 4 + ny * 8 + 4;
    if (nx > 0.5) anchor = "start"; else if (nx < -0.5) anchor = "end";
  }
  el("path", { d, stroke: e.color, "marker-end": `url(#arrow-${e.color.slice(1)})` }, eg);
  el("text", { x: lx, y: ly, fill: e.color, "text-anchor": anchor }, eg).textContent = edgeLabel(e);
}

function select(n) {
  selected = n;
  document.querySelectorAll(".node").forEach(x => x.classList.toggle("selected", x.dataset.id === n.id));
  document.getElementById("selection").textContent = `${n.kind} ${n.id}: ${n.flows} flows`;
  const pods = document.getElementById("pods");
  pods.replaceChildren();
  for (const p of n.pods || []) {
    const b = document.createElement("button");
    b.textContent = p;
    b.addEventListener("click", () => loadProcesses(p));
    pods.appendChild(b);
  }
  if (n.pods && n.pods.length) loadProcesses(n.pods[0]);
  else document.getElementById("processes").textContent = "No pod of this node runs here.";
}

async function loadProcesses(pod) {
  const out = document.getElementById("processes");
  out.dataset.pod = pod;
  const r = await fetch("api/processes?pod=" + encodeURIComponent(pod));
  const body = await r.json();
  if (!r.ok) { out.textContent = body.error; return; }
  if (!body.sensor) { out.textContent = "The agent's process sensor is off."; return; }
  out.textContent = body.events.length ? body.events.map(e => e.line).join("\n") : "No process events of " + pod + ".";
}

function flowRow(f) {
  const tr = document.createElement("tr");
  const src = f.srcPod ? `${f.srcPod} (${f.source})` : f.source;
  let dst = f.dstPod ? `${f.dstPod} (${f.destination})` : f.destination;
  if (f.origDestination) dst += " via " + f.origDestination;
  const cells = [new Date(f.time).toLocaleTimeString(), src, dst, f.protocol, f.verdict, f.direction,
    f.decision + (f.reason && f.verdict !== "FORWARDED" ? ` (${f.reason})` : "")];
  cells.forEach((c, i) => {
    const td = document.createElement("td");
    td.textContent = c;
    if (i === 4) td.className = f.verdict;
    tr.appendChild(td);
  });
  return tr;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const q = query();
    const [gr, fr] = await Promise.all([fetch("api/graph?" + q), fetch("api/flows?" + q)]);
    const g = await gr.json(), flows = await fr.json();
    if (!gr.ok) throw new Error(g.error);
    draw(g);
    const tbody = document.querySelector("#flows tbody");
    tbody.replaceChildren(...(fr.ok ? flows.slice().reverse().map(flowRow) : []));
    status.textContent = g.error ? "agent: " + g.error : (fr.ok ? "live" : "flows: " + flows.error);
    status.classList.toggle("error", Boolean(g.error) || !fr.ok);
    document.body.dataset.loaded = "true";
  } catch (err) {
    status.textContent = String(err);
    status.classList.add("error");
  }
}

document.getElementById("filters").addEventListener("submit", ev => { ev.preventDefault(); refresh(); });
refresh();
setInterval(refresh, 2000);
