"""charrnn-inspect's page: its fixed style and script (no data here; the script reads the JSON block _page embeds, and builds every node with textContent)."""

STYLE = r"""
:root { --ink: #1d232b; --muted: #5f6b7a; --line: #dde3ea; --panel: #f6f8fa; --accent: #b4441b; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif; }
header { padding: 14px 22px 10px; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 18px; margin: 0 0 6px; font-weight: 600; }
h1 .name { color: var(--accent); }
dl.summary { display: flex; flex-wrap: wrap; gap: 2px 20px; margin: 0; color: var(--muted);
  font-size: 13px; }
dl.summary div { display: flex; gap: 6px; }
dl.summary dt { font-weight: 600; color: var(--ink); }
dl.summary dd { margin: 0; }
.controls { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap;
  align-items: center; gap: 10px 16px; padding: 8px 22px; background: #fff;
  border-bottom: 1px solid var(--line); }
.controls label { color: var(--muted); }
.controls select, .controls input, .controls button { font: inherit; padding: 3px 6px;
  border: 1px solid #c4ccd6; border-radius: 5px; background: #fff; color: var(--ink); }
.controls input[type=number] { width: 5.5em; }
.controls button { cursor: pointer; min-width: 2.2em; }
.controls button:hover { background: var(--panel); }
.legend { display: flex; align-items: center; gap: 6px; color: var(--muted); font-size: 12px; }
.legend .bar { width: 140px; height: 12px; border-radius: 3px; border: 1px solid var(--line); }
.stat { font-weight: 600; }
.hint { color: var(--muted); font-size: 12px; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 330px; gap: 0; }
#text { margin: 0; padding: 16px 22px 40px; white-space: pre-wrap; word-wrap: break-word;
  font: 14px/1.75 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
#text span { border-radius: 2px; cursor: default; }
#text span.at { outline: 1.5px solid var(--ink); }
#text span.pin { outline: 2px solid var(--accent); }
aside { border-left: 1px solid var(--line); padding: 14px 16px; background: var(--panel); }
aside .sticky { position: sticky; top: 54px; }
aside h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  margin: 0 0 8px; font-weight: 600; }
#details { min-height: 210px; margin-bottom: 18px; }
#details .char { font: 600 22px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
#details .meta { color: var(--muted); font-size: 12px; margin: 2px 0 8px; }
table.guesses { border-collapse: collapse; width: 100%; font-size: 13px; }
table.guesses td { padding: 2px 4px; }
table.guesses td.g { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; width: 3.2em;
  text-align: center; background: #fff; border: 1px solid var(--line); border-radius: 3px; }
table.guesses td.p { width: 4.5em; text-align: right; color: var(--muted); }
table.guesses tr.actual td.g { border-color: var(--accent); color: var(--accent);
  font-weight: 700; }
.pbar { height: 9px; background: #6c8ebf; border-radius: 2px; }
tr.actual .pbar { background: var(--accent); }
ol.ranking { list-style: none; margin: 0; padding: 0; font-size: 13px; }
ol.ranking li { margin: 0; }
ol.ranking button { width: 100%; display: grid; grid-template-columns: 1fr 4.2em 4.4em; gap: 6px;
  text-align: left; font: inherit; padding: 3px 6px; border: 0; border-radius: 4px;
  background: transparent; color: var(--ink); cursor: pointer; }
ol.ranking button:hover { background: #e8edf3; }
ol.ranking button.on { background: #dfe7f1; font-weight: 600; }
ol.ranking .unit, ol.ranking .score { color: var(--muted); text-align: right;
  font-variant-numeric: tabular-nums; }
@media (max-width: 800px) { main { grid-template-columns: 1fr; } aside { border-left: 0; } }
"""

SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const bytes = (b64) => {
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };
  const n = data.n, k = data.k;
  const chars = data.text.map((c) => String.fromCodePoint(c));
  const vocab = data.vocab.map((c) => String.fromCodePoint(c));
  const topIds = new Uint32Array(bytes(data.top_ids));
  const topP = new Uint16Array(bytes(data.top_probs));
  const surprise = new Float32Array(bytes(data.surprise));
  const sets = data.sets.map((s) => Object.assign({}, s, { q: new Int8Array(bytes(s.values)) }));

  // how a character is drawn: in the text (newline kept as a line break) and alone
  const control = (c) => {
    const cp = c.codePointAt(0);
    if (cp < 32) return String.fromCodePoint(0x2400 + cp);
    if (cp === 127) return "\u2421";
    if ((cp >= 0x80 && cp < 0xa0) || (cp >= 0xd800 && cp < 0xe000)) return "\ufffd";
    return null;
  };
  const inText = (c) => c === "\n" ? "\u21b5\n" : c === "\t" ? "\t" : (control(c) || c);
  const alone = (c) => c === " " ? "\u2423" : c === "\n" ? "\u21b5" : c === "\t" ? "\u21e5"
    : (control(c) || c);
  const fix = (x, d) => (Math.abs(x) < 0.5 * Math.pow(10, -d) ? 0 : x).toFixed(d);
  const pct = (p) => p >= 0.995 ? (100 * p).toFixed(0) + "%" : p >= 0.001
    ? (100 * p).toFixed(1) + "%" : "<0.1%";

  // -- header ------------------------------------------------------------------
  document.title = "charrnn-inspect: " + (data.name || "model");
  const header = el("header");
  const h1 = el("h1", null, "charrnn-inspect ");
  h1.appendChild(el("span", "name", data.name || ""));
  header.appendChild(h1);
  const dl = el("dl", "summary");
  const fact = (label, value, id) => {
    const d = el("div");
    d.appendChild(el("dt", null, label));
    const dd = el("dd", null, value);
    if (id) dd.id = id;
    d.appendChild(dd);
    dl.appendChild(d);
  };
  data.summary.forEach(([label, value]) => fact(label, value));
  fact("mean surprise", data.mean_surprise === null ? "n/a"
    : data.mean_surprise.toFixed(4) + " bits/char over " + (n - 1).toLocaleString("en")
      + " characters", "mean-surprise");
  header.appendChild(dl);
  document.body.appendChild(header);

  // -- controls ----------------------------------------------------------------
  const controls = el("div", "controls");
  const setSel = el("select");
  setSel.id = "set";
  sets.forEach((s, i) => {
    const o = el("option", null, s.label);
    o.value = String(i);
    setSel.appendChild(o);
  });
  const unitIn = el("input");
  unitIn.type = "number"; unitIn.id = "unit"; unitIn.min = "0"; unitIn.value = "0";
  const prev = el("button", null, "\u2190"), next = el("button", null, "\u2192");
  prev.id = "prev"; next.id = "next";
  prev.title = "previous unit (\u2190 or k)"; next.title = "next unit (\u2192 or j)";
  const lab = (text, target) => {
    const l = el("label", null, text);
    l.htmlFor = target.id;
    return l;
  };
  const of = el("span", "hint");
  const stat = el("span", "stat");
  stat.id = "unit-stat";
  const legend = el("span", "legend");
  const low = el("span", null, "\u22121"), high = el("span", null, "+1");
  const bar = el("span", "bar");
  [low, bar, high].forEach((e) => legend.appendChild(e));
  [lab("activations", setSel), setSel, lab("unit", unitIn), unitIn, of, prev, next, stat, legend,
   el("span", "hint",
      "\u2190 \u2192 or j k: step units (shift: 10) \u00b7 click a character to pin it")]
    .forEach((e) => controls.appendChild(e));
  document.body.appendChild(controls);

  // -- the text and the side panel ----------------------------------------------
  const main = el("main");
  const pre = el("pre");
  pre.id = "text";
  const spans = new Array(n);
  const frag = document.createDocumentFragment();
  for (let i = 0; i < n; i++) {
    const s = el("span", null, inText(chars[i]));
    s.idx = i;
    spans[i] = s;
    frag.appendChild(s);
  }
  pre.appendChild(frag);
  main.appendChild(pre);
  const aside = el("aside");
  const stick = el("div", "sticky");
  stick.appendChild(el("h2", null, "character"));
  const details = el("div");
  details.id = "details";
  details.appendChild(el("div", "meta", "Hover over a character to see the model's guesses."));
  stick.appendChild(details);
  stick.appendChild(el("h2", null, "interpretable units"));
  const ranking = el("ol", "ranking");
  ranking.id = "ranking";
  stick.appendChild(ranking);
  aside.appendChild(stick);
  main.appendChild(aside);
  document.body.appendChild(main);

  // -- colours: a diverging scale, blue (-1) white (0) orange (+1) ----------------
  const palette = new Array(255);
  for (let q = -127; q <= 127; q++) {
    const a = Math.abs(q) / 127;
    const [r, g, b] = q < 0 ? [49, 113, 196] : [226, 107, 36];
    const alpha = (0.7 * Math.pow(a, 0.8)).toFixed(3);
    palette[q + 127] = "rgba(" + r + "," + g + "," + b + "," + alpha + ")";
  }
  bar.style.background =
    "linear-gradient(to right, " + palette[0] + ", #fff, " + palette[254] + ")";

  let cur = { set: 0, unit: 0 }, pinned = -1, shownAt = -1;
  const shown = [];   // called with (set, unit) whenever another unit is shown
  // what a live page's script (a second one) shares with this one: helpers, colours, the unit
  Object.defineProperty(window, "inspectView", { value: Object.freeze({
    el: el, bytes: bytes, alone: alone, inText: inText, pct: pct, fix: fix, palette: palette,
    vocab: vocab, k: k, current: () => [sets[cur.set], cur.unit],
    onShow: (f) => { shown.push(f); } }) });
  const value = (s, u, i) => sets[s].q[u * n + i] / 127 * sets[s].scale[u];

  function show(setIndex, unit) {
    const s = sets[setIndex];
    unit = ((unit % s.units) + s.units) % s.units;
    cur = { set: setIndex, unit: unit };
    setSel.value = String(setIndex);
    unitIn.max = String(s.units - 1);
    unitIn.value = String(unit);
    of.textContent = "of " + s.units;
    const q = s.q, base = unit * n;
    let sum = 0, sq = 0;
    for (let i = 0; i < n; i++) {
      const v = q[base + i];
      spans[i].style.backgroundColor = palette[v + 127];
      sum += v; sq += v * v;
    }
    const mean = sum / n / 127 * s.scale[unit];
    const sd = Math.sqrt(Math.max(sq / n - (sum / n) * (sum / n), 0)) / 127 * s.scale[unit];
    const top = s.scale[unit] === 1 ? "1" : fix(s.scale[unit], 2);
    low.textContent = "\u2212" + top;
    high.textContent = "+" + top;
    stat.textContent = s.name + "[" + unit + "]: mean " + fix(mean, 2) + ", sd " + fix(sd, 2);
    ranking.querySelectorAll("button").forEach((b) =>
      b.classList.toggle("on", b.unit === unit && b.set === setIndex));
    if (shownAt >= 0) detail(shownAt);
    shown.forEach((f) => f(sets[setIndex], unit));
  }

  function detail(i) {
    if (shownAt >= 0) spans[shownAt].classList.remove("at");
    spans[i].classList.add("at");
    shownAt = i;
    details.textContent = "";
    const head = el("div");
    head.appendChild(el("span", "char", alone(chars[i])));
    details.appendChild(head);
    const cp = chars[i].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    const sp = surprise[i];
    details.appendChild(el("div", "meta", "character " + (i + 1).toLocaleString("en") + " of "
      + n.toLocaleString("en") + " \u00b7 U+" + cp + " \u00b7 "
      + (Number.isNaN(sp) ? "first character: not predicted"
        : "surprise " + sp.toFixed(2) + " bits (p = " + pct(Math.pow(2, -sp)) + ")")
      + " \u00b7 " + sets[cur.set].name + "[" + cur.unit + "] = "
      + fix(value(cur.set, cur.unit, i), 2)));
    details.appendChild(el("div", "meta", "the model's guesses for the next character:"));
    const table = el("table", "guesses");
    table.id = "guesses";
    const actual = i + 1 < n ? chars[i + 1] : null;
    for (let j = 0; j < k; j++) {
      const id = topIds[i * k + j], p = topP[i * k + j] / 65535;
      const tr = el("tr", vocab[id] === actual ? "actual" : null);
      tr.appendChild(el("td", "g", alone(vocab[id])));
      const cell = el("td");
      const b = el("div", "pbar");
      b.style.width = Math.max(1, Math.round(100 * p)) + "%";
      cell.appendChild(b);
      tr.appendChild(cell);
      tr.appendChild(el("td", "p", pct(p)));
      table.appendChild(tr);
    }
    details.appendChild(table);
    if (actual !== null)
      details.appendChild(el("div", "meta", "next came " + alone(actual) + " ("
        + surprise[i + 1].toFixed(2) + " bits)"));
  }

  data.ranking.forEach((r) => {
    const li = el("li"), b = el("button");
    const setIndex = Math.max(0, sets.findIndex((s) => s.name === r.set));
    b.unit = r.unit; b.set = setIndex;
    b.appendChild(el("span", null, r.feature));
    b.appendChild(el("span", "unit", r.set + "[" + r.unit + "]"));
    b.appendChild(el("span", "score", r.feature === "highest variance"
      ? "var " + r.score.toFixed(2)
      : "r " + (r.score >= 0 ? "+" : "\u2212") + Math.abs(r.score).toFixed(2)));
    b.title = r.feature === "highest variance" ? "variance of the unit over the text"
      : "correlation of the unit with: " + r.feature;
    b.addEventListener("click", () => show(setIndex, r.unit));
    li.appendChild(b);
    ranking.appendChild(li);
  });

  pre.addEventListener("mouseover", (e) => {
    const i = e.target.idx;
    if (pinned < 0 && i !== undefined) detail(i);
  });
  pre.addEventListener("click", (e) => {
    const i = e.target.idx;
    if (i === undefined) return;
    if (pinned >= 0) spans[pinned].classList.remove("pin");
    pinned = pinned === i ? -1 : i;
    if (pinned >= 0) spans[pinned].classList.add("pin");
    detail(i);
  });
  setSel.addEventListener("change", () => show(Number(setSel.value), cur.unit));
  unitIn.addEventListener("change", () => {
    const u = parseInt(unitIn.value, 10);
    show(cur.set, Number.isFinite(u) ? u : 0);
  });
  prev.addEventListener("click", () => show(cur.set, cur.unit - 1));
  next.addEventListener("click", () => show(cur.set, cur.unit + 1));
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const step = e.shiftKey ? 10 : 1;
    if (e.key === "ArrowRight" || e.key === "j" || e.key === "J") show(cur.set, cur.unit + step);
    else if (e.key === "ArrowLeft" || e.key === "k" || e.key === "K")
      show(cur.set, cur.unit - step);
    else return;
    e.preventDefault();
  });
  const first = data.ranking.length ? data.ranking[0] : null;
  show(0, first ? first.unit : 0);
  window.inspectReady = performance.now();
  // after the first frame with the text in it is painted (two animation frames on)
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.inspectPainted = performance.now();
  }));
})();
"""
