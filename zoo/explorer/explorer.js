// The explorer page's script: DATA is zoo.explorer.page_data's dictionary, inlined by zoo/explorer/__init__.py.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function svgEl(tag, attrs = {}, title = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (title !== null) {  // the browser's own tooltip on hover
    const t = document.createElementNS(SVG_NS, "title");
    t.textContent = title;
    node.append(t);
  }
  return node;
}

function label(svg, attrs, text) {
  const node = svgEl("text", attrs);
  node.textContent = text;
  svg.append(node);
}

const fmt = (x, digits = 1) => (x === null || x === undefined ? "–" : x.toFixed(digits));
const words = text => text.split(/\s+/).filter(w => w.length > 0);

// ---------------------------------------------------------------- charts: a line chart on linear axes, as SVG

function lineChart(container, { xLabel, yLabel, xMax, yMax, series, marker = null }) {
  const W = 900, H = 380, left = 56, right = 16, top = 12, bottom = 44;
  const x = v => left + (v / xMax) * (W - left - right);
  const y = v => H - bottom - (v / yMax) * (H - top - bottom);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": yLabel });
  for (let i = 0; i <= 5; i++) {  // grid and ticks
    const yv = (yMax * i) / 5, xv = (xMax * i) / 5;
    svg.append(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: y(yv), y2: y(yv) }));
    label(svg, { x: left - 6, y: y(yv) + 4, "text-anchor": "end" }, fmt(yv, 0));
    label(svg, { x: x(xv), y: H - bottom + 16, "text-anchor": "middle" }, fmt(xv, 0));
  }
  label(svg, { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel);
  label(svg, { x: 14, y: (top + H - bottom) / 2, "text-anchor": "middle",
                             transform: `rotate(-90 14 ${(top + H - bottom) / 2})` }, yLabel);
  if (marker !== null) {  // a vertical line, e.g. the longest training source
    svg.append(svgEl("line", { x1: x(marker.at), x2: x(marker.at), y1: top, y2: H - bottom, stroke: "#888",
                               "stroke-dasharray": "3 3" }));
    label(svg, { x: x(marker.at) - 4, y: H - bottom - 6, "text-anchor": "end", fill: "#666" }, marker.label);
  }
  for (const s of series) {
    const path = s.line.map(([a, b], i) => `${i ? "L" : "M"}${x(a).toFixed(1)},${y(b).toFixed(1)}`).join("");
    svg.append(svgEl("path", { d: path, fill: "none", stroke: s.color, "stroke-width": 2,
                               "stroke-dasharray": s.dash || "none", opacity: 0.9 }));
    for (const d of s.dots) {
      svg.append(svgEl("circle", { cx: x(d.x), cy: y(d.y), r: d.r || 3.5, fill: s.color, opacity: 0.85,
                                   class: "dot" }, d.title));
    }
  }
  container.append(svg);
}

function legend(items) {
  return el("p", { class: "legend" },
            ...items.map(([label, color, dash]) =>
              el("span", {}, el("i", { style: `background:${color};${dash ? "opacity:.5" : ""}` }), label)));
}

const SPLIT_DASHES = ["none", "7 4", "2 3", "9 3 2 3"];

function drawLengthChart() {
  const box = document.getElementById("length-chart");
  const series = [];
  let xMax = 0;
  DATA.groups.forEach((g, j) => {
    DATA.splits.forEach((split, k) => {
      const buckets = DATA.by_length[g.name][split];
      const spread = (j - (DATA.groups.length - 1) / 2) * 0.5;  // the groups' dots a little apart
      series.push({
        color: g.color, dash: SPLIT_DASHES[k % SPLIT_DASHES.length],
        line: buckets.map(b => [(b.lo + b.hi) / 2, b.mean]),
        dots: buckets.flatMap(b => b.seeds.map(s => ({
          x: (b.lo + b.hi) / 2 + spread, y: s.bleu,
          title: `${g.name}, ${split}, source ${b.lo}–${b.hi} tokens: ${b.n} sentences\n` +
                 `mean BLEU ${fmt(b.mean)}; each seed: ` + b.seeds.map(t => `seed ${t.seed} ${fmt(t.bleu)}`).join(", "),
        }))),
      });
      xMax = Math.max(xMax, ...buckets.map(b => b.hi));
    });
  });
  box.append(legend([...DATA.groups.map(g => [g.name, g.color]),
                     ...DATA.splits.map((s, k) => [`split ${s}: ${["solid", "dashed", "dotted", "dash-dot"][k % 4]}`,
                                                   "#444", k > 0])]));
  lineChart(box, { xLabel: "source length (tokens, bucket centre)", yLabel: "BLEU (beam)", xMax, yMax: 100, series,
                   marker: { at: DATA.longest_training_source + 0.5, label: "longest training source" } });
}

function drawCurveChart() {
  const box = document.getElementById("curve-chart");
  const series = [];
  let xMax = 0;
  for (const g of DATA.groups) {
    for (const run of DATA.curves[g.name]) {
      const pts = run.points;
      if (!pts.length) continue;
      xMax = Math.max(xMax, ...pts.map(p => p[0]));
      series.push({ color: g.color, line: pts.map(p => [p[0], p[1]]), dots: pts.map(p => ({
        x: p[0], y: p[1], r: 2.5, title: `${g.name}, seed ${run.seed}: validation BLEU ${fmt(p[1])} at ` +
                                          `${fmt(p[0])} training minutes` })) });
      const fit = pts.filter(p => p[2] !== null && p[2] !== undefined);
      if (fit.length) series.push({ color: g.color, dash: "2 3", line: fit.map(p => [p[0], p[2]]), dots: [] });
    }
  }
  if (!series.length) {
    box.append(el("p", { class: "muted" }, "These runs validated only at the end: no curve."));
    return;
  }
  box.append(legend(DATA.groups.map(g => [g.name, g.color])));
  lineChart(box, { xLabel: "training time (minutes, validation excluded)", yLabel: "validation BLEU (greedy)",
                   xMax: xMax * 1.02, yMax: 100, series });
}

// ---------------------------------------------------------------- sentences

const state = { split: DATA.splits[0], chosen: null };

function attentionEntry(group, split, index) {
  const sample = DATA.attention[group];
  return sample ? sample.find(a => a.split === split && a.index === index) || null : null;
}

const hasAttention = (split, index) => DATA.groups.some(g => attentionEntry(g.name, split, index) !== null);

function fillSentenceList() {
  const list = document.getElementById("sentence-list");
  const query = document.getElementById("search").value.trim().toLowerCase();
  const lo = Number(document.getElementById("min-len").value) || 0;
  const hi = Number(document.getElementById("max-len").value) || Infinity;
  const onlyStored = document.getElementById("with-attention").checked;
  list.replaceChildren();
  DATA.sentences[state.split].forEach((s, index) => {
    const n = words(s.source).length;
    const stored = hasAttention(state.split, index);
    if (n < lo || n > hi || (onlyStored && !stored)) return;
    if (query && !(s.source.toLowerCase().includes(query) || s.reference.toLowerCase().includes(query))) return;
    const item = el("li", { "data-index": index, title: s.source }, el("span", { class: "len" }, `${n}w`),
                    (stored ? "★ " : "") + (s.source.length > 70 ? s.source.slice(0, 70) + "…" : s.source));
    if (index === state.chosen) item.classList.add("chosen");
    item.addEventListener("click", () => showSentence(index));
    list.append(item);
  });
  if (!list.children.length) list.append(el("li", { class: "muted" }, "no sentence matches"));
}

function marked(hypothesis, reference) {
  // The hypothesis with the words outside its longest common subsequence with the reference marked.
  const h = words(hypothesis), r = words(reference);
  const L = Array.from({ length: h.length + 1 }, () => new Uint16Array(r.length + 1));
  for (let i = h.length - 1; i >= 0; i--)
    for (let j = r.length - 1; j >= 0; j--)
      L[i][j] = h[i] === r[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = el("span");
  let i = 0, j = 0;
  while (i < h.length) {
    if (j < r.length && h[i] === r[j]) { out.append(h[i] + " "); i++; j++; }
    else if (j < r.length && L[i][j + 1] >= L[i + 1][j]) j++;
    else { out.append(el("mark", { class: "differs", title: "not in the reference here" }, h[i]), " "); i++; }
  }
  return out;
}

async function weightsOf(entry) {
  // The entry's (layers, heads, T, S) uint8 weights: base64, then zlib, inflated by the browser itself.
  if (!entry.bytes) {
    const packed = Uint8Array.from(atob(entry.weights), c => c.charCodeAt(0));
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("deflate"));
    entry.bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return entry.bytes;
}

const LABEL = 90;  // pixels of a heatmap's margin for the pieces' names

function cellSize(entry) {
  // Small enough for two models' maps side by side; names are written where a cell has room for them.
  return Math.max(3, Math.min(14, Math.floor(400 / Math.max(entry.source.length, entry.target.length))));
}

function weightAt(entry, bytes, layer, heads, t, s) {
  // The weight of output t on source s in [0, 255]: one head's, or the mean over `heads`.
  const H = entry.heads, T = entry.target.length, S = entry.source.length;
  let w = 0;
  for (const h of heads) w += bytes[((layer * H + h) * T + t) * S + s];
  return w / heads.length;
}

function drawHeatmap(canvas, entry, bytes, layer, heads) {
  // Rows are output pieces, columns source pieces; white 0 to black 1.
  const S = entry.source.length, T = entry.target.length, cell = cellSize(entry);
  const labelW = LABEL, labelH = LABEL;
  canvas.width = labelW + S * cell + 4;
  canvas.height = labelH + T * cell + 4;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < S; s++) {
      const shade = 255 - Math.round(weightAt(entry, bytes, layer, heads, t, s));
      ctx.fillStyle = `rgb(${shade},${shade},${shade})`;
      ctx.fillRect(labelW + s * cell, labelH + t * cell, cell, cell);
    }
  }
  ctx.strokeStyle = "#bbb";
  ctx.strokeRect(labelW - 0.5, labelH - 0.5, S * cell + 1, T * cell + 1);
  ctx.fillStyle = "#333";
  ctx.font = `${Math.min(12, cell + 2)}px system-ui, sans-serif`;
  if (cell >= 7) {
    ctx.textAlign = "right";
    entry.target.forEach((p, t) => ctx.fillText(p.slice(0, 12), labelW - 4, labelH + t * cell + cell * 0.8));
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    entry.source.forEach((p, s) => ctx.fillText(p.slice(0, 12), -labelH + 4, labelW + s * cell + cell * 0.8));
    ctx.restore();
  } else {
    ctx.fillText(`${T} output × ${S} source pieces:`, 4, 14);
    ctx.fillText("hover for their names", 4, 30);
  }
}

function onHover(canvas, entry, bytes, choice) {
  // The canvas's tooltip names the output and source pieces under the pointer, and the weight between them.
  canvas.addEventListener("mousemove", event => {
    const cell = cellSize(entry), box = canvas.getBoundingClientRect();
    const s = Math.floor((event.clientX - box.left - LABEL) / cell);
    const t = Math.floor((event.clientY - box.top - LABEL) / cell);
    const inside = s >= 0 && t >= 0 && s < entry.source.length && t < entry.target.length;
    const { layer, heads } = choice();
    canvas.title = inside ? `output "${entry.target[t]}" ← source "${entry.source[s]}": ` +
                            fmt(weightAt(entry, bytes, layer, heads, t, s) / 255, 2) : "";
  });
}

async function attentionPanel(group, split, index) {
  const box = el("div", { class: "map", "data-group": group.name },
                 el("h3", { style: `color:${group.color}` }, `${group.name} (seed ${group.shown_seed})`));
  if (DATA.attention[group.name] === null || DATA.attention[group.name] === undefined) {
    const none = DATA.attention[group.name] === null;
    box.append(el("div", { class: "note" }, none
      ? "No attention: the decoder sees the whole source only as one fixed-length context vector, the same at " +
        "every output step. There is nothing to draw per source token."
      : "These runs stored no attention sample (results from before the explorer page)."));
    box.dataset.kind = none ? "context-vector" : "missing";
    return box;
  }
  const entry = attentionEntry(group.name, split, index);
  if (entry === null) {
    box.append(el("div", { class: "note" }, "Attention is stored for the sentences marked ★ only."));
    box.dataset.kind = "not-stored";
    return box;
  }
  const bytes = await weightsOf(entry);
  const layer = el("select", { "aria-label": "layer" },
                   ...[...Array(entry.layers).keys()].map(l => el("option", { value: l }, `layer ${l + 1}`)));
  layer.value = entry.layers - 1;
  const head = el("select", { "aria-label": "head" }, el("option", { value: -1 }, "mean over heads"),
                  ...[...Array(entry.heads).keys()].map(h => el("option", { value: h }, `head ${h + 1}`)));
  const canvas = el("canvas", { class: "heatmap", "data-group": group.name });
  const choice = () => ({ layer: Number(layer.value),  // head -1: the mean over the layer's heads
                          heads: Number(head.value) < 0 ? [...Array(entry.heads).keys()] : [Number(head.value)] });
  const redraw = () => drawHeatmap(canvas, entry, bytes, choice().layer, choice().heads);
  onHover(canvas, entry, bytes, choice);
  layer.addEventListener("change", redraw);
  head.addEventListener("change", redraw);
  if (entry.layers > 1) box.append(layer);
  if (entry.heads > 1) box.append(head);
  box.append(el("div", { class: "muted" }, "rows: its greedy output; columns: the source"), canvas);
  box.dataset.kind = "heatmap";
  redraw();
  return box;
}

async function showSentence(index) {
  state.chosen = index;
  for (const li of document.querySelectorAll("#sentence-list li"))
    li.classList.toggle("chosen", Number(li.dataset.index) === index);
  const split = state.split, s = DATA.sentences[split][index];
  const rows = [el("tr", {}, el("td", { class: "who" }, "source"), el("td", {}, s.source)),
                el("tr", {}, el("td", { class: "who" }, "reference"), el("td", {}, s.reference))];
  for (const g of DATA.groups) {
    if (!DATA.translations[g.name]) continue;  // (a group whose runs kept no translations)
    const { beam, greedy } = DATA.translations[g.name][split][index];
    const exact = beam === s.reference ? el("span", { class: "exact" }, " ✓ exact") : "";
    rows.push(el("tr", {}, el("td", { class: "who", style: `color:${g.color}` }, g.name, exact),
                 el("td", {}, marked(beam, s.reference))));
    if (greedy !== null && greedy !== undefined && greedy !== beam)
      rows.push(el("tr", {}, el("td", { class: "who muted" }, `${g.name}, greedy`),
                   el("td", {}, marked(greedy, s.reference))));
  }
  const box = document.getElementById("sentence");
  const maps = el("div", { class: "maps" });
  box.replaceChildren(el("h3", {}, `${split} sentence ${index + 1} of ${DATA.sentences[split].length}`),
                      el("table", { class: "texts" }, ...rows),
                      el("p", { class: "muted" }, "Each model's beam search translation, and its greedy one " +
                         "where that differs (the heatmap's rows); ✓ exact: identical to the reference, character " +
                         "for character; marked: words that are not the reference's at that place (outside the " +
                         "longest common word sequence of the two)."),
                      maps);
  for (const g of DATA.groups) maps.append(await attentionPanel(g, split, index));
  if (state.chosen === index) box.dataset.ready = String(index);  // (not if another click came meanwhile)
}

function setUpSentences() {
  const select = document.getElementById("split");
  for (const split of DATA.splits) select.append(el("option", { value: split }, split));
  select.addEventListener("change", () => { state.split = select.value; state.chosen = null; fillSentenceList(); });
  const anyStored = Object.values(DATA.attention).some(sample => sample);  // (runs from before the explorer: none)
  document.getElementById("with-attention").checked = anyStored;
  for (const id of ["search", "min-len", "max-len", "with-attention"])
    document.getElementById(id).addEventListener("input", fillSentenceList);
  document.getElementById("shown-seeds").textContent = "Translations and attention are each group's first run's: " +
    DATA.groups.filter(g => g.shown_seed !== null).map(g => `${g.name} seed ${g.shown_seed}`).join(", ") +
    ". The charts below cover every seed.";
  fillSentenceList();
}

document.getElementById("report-tables").innerHTML = DATA.report_html;
drawLengthChart();
drawCurveChart();
setUpSentences();
