"""charrnn-inspect's live page: its fixed style and script, the model's forward pass in JavaScript (no data here; the script reads the JSON block _page_live makes, and shows text with textContent only)."""

LIVE_STYLE = r"""
#live { display: grid; grid-template-columns: minmax(0, 1fr) 330px;
  border-bottom: 1px solid var(--line); }
#live .typing { padding: 12px 22px 14px; }
#live aside { padding: 12px 16px; }
#live h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  margin: 0 0 6px; font-weight: 600; }
#live textarea { width: 100%; min-height: 3.4em; resize: vertical; padding: 6px 8px;
  font: 14px/1.5 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  border: 1px solid #c4ccd6; border-radius: 5px; }
#live pre { margin: 6px 0 0; min-height: 1.75em; white-space: pre-wrap; word-wrap: break-word;
  font: 14px/1.75 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
#live pre span { border-radius: 2px; }
#live pre span.unknown { text-decoration: line-through; color: var(--muted); }
#live .row { display: grid; grid-template-columns: 6.5em minmax(0, 1fr); align-items: start;
  gap: 8px; }
#live .row > .hint { padding-top: 8px; }
#live .gen { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; margin-top: 10px; }
#live .gen label { color: var(--muted); }
#live .gen input, #live .gen button { font: inherit; padding: 3px 6px; border: 1px solid #c4ccd6;
  border-radius: 5px; background: #fff; color: var(--ink); width: 5.5em; }
#live .gen button { cursor: pointer; width: auto; }
#live #generated { color: var(--accent); }
#live-stat { color: var(--muted); font-size: 12px; margin-top: 4px; }
"""

LIVE_SCRIPT = r"""
"use strict";
(function () {
  // the static script's helpers and colours (window.inspectView), the model (JSON block "model")
  const view = window.inspectView, el = view.el;
  const m = JSON.parse(document.getElementById("model").textContent);
  const Arr = m.dtype === "float64" ? Float64Array : Float32Array;
  const L = m.layers, H = m.hidden, V = m.vocab_size, D = m.embedding, cell = m.cell;
  const G = cell === "lstm" ? 4 : cell === "gru" ? 3 : 1, K = cell === "lstm" ? 2 : 1;
  const S = L * K * H, GH = G * H;
  const w = (name) => new Arr(view.bytes(m.weights[name]));
  const layers = [];
  for (let l = 0; l < L; l++)
    layers.push({ ih: w("rnn.weight_ih_l" + l), hh: w("rnn.weight_hh_l" + l),
      bih: w("rnn.bias_ih_l" + l), bhh: w("rnn.bias_hh_l" + l), I: l ? H : (D || V) });
  const Why = w("out.weight"), by = w("out.bias"), embed = D ? w("embed.weight") : null;
  const h0 = Float64Array.from(new Arr(view.bytes(m.h0)));
  const vocab = view.vocab, idOf = new Map(vocab.map((c, i) => [c, i]));
  const gx = new Float64Array(GH), gh = new Float64Array(GH);
  const sig = (x) => 1 / (1 + Math.exp(-x));

  // one step: the state (S,) after reading character id from state prev (S,); per layer
  // (bottom first) h (H), then an LSTM's c (H); PyTorch's equations (reference_gated)
  function step(prev, id) {
    const st = new Float64Array(S);
    for (let l = 0; l < L; l++) {
      const ly = layers[l], ih = ly.ih, hh = ly.hh, I = ly.I, at = l * K * H;
      if (l === 0 && !D) {           // one-hot input: column id of weight_ih (GH, V)
        for (let r = 0; r < GH; r++) gx[r] = ly.bih[r] + ih[r * V + id];
      } else {                       // x: the embedding's row id, or the layer below's h
        const x = l === 0 ? embed.subarray(id * D, id * D + D)
          : st.subarray(at - K * H, at - K * H + H);
        for (let r = 0; r < GH; r++) {
          let s = 0;
          for (let j = 0, o = r * I; j < I; j++) s += ih[o + j] * x[j];
          gx[r] = ly.bih[r] + s;
        }
      }
      for (let r = 0; r < GH; r++) {
        let s = 0;
        for (let j = 0, o = r * H; j < H; j++) s += hh[o + j] * prev[at + j];
        gh[r] = ly.bhh[r] + s;
      }
      if (cell === "rnn") {
        for (let j = 0; j < H; j++) st[at + j] = Math.tanh(gx[j] + gh[j]);
      } else if (cell === "lstm") {  // gates i, f, g, o
        for (let j = 0; j < H; j++) {
          const i = sig(gx[j] + gh[j]), f = sig(gx[H + j] + gh[H + j]);
          const g = Math.tanh(gx[2 * H + j] + gh[2 * H + j]);
          const o = sig(gx[3 * H + j] + gh[3 * H + j]);
          const c = f * prev[at + H + j] + i * g;
          st[at + H + j] = c;
          st[at + j] = o * Math.tanh(c);
        }
      } else {                       // gru: gates r, z, n
        for (let j = 0; j < H; j++) {
          const r = sig(gx[j] + gh[j]), z = sig(gx[H + j] + gh[H + j]);
          const n = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
          st[at + j] = (1 - z) * n + z * prev[at + j];
        }
      }
    }
    return st;
  }

  // the output layer on the top layer's h: logits (V,)
  function logits(st) {
    const top = (L - 1) * K * H, out = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = by[v];
      for (let j = 0, o = v * H; j < H; j++) s += Why[o + j] * st[top + j];
      out[v] = s;
    }
    return out;
  }
  function softmax(z, temperature) {
    let mx = -Infinity;
    for (let v = 0; v < z.length; v++) mx = Math.max(mx, z[v]);
    const p = new Float64Array(z.length);
    let sum = 0;
    for (let v = 0; v < z.length; v++) sum += (p[v] = Math.exp((z[v] - mx) / temperature));
    for (let v = 0; v < z.length; v++) p[v] /= sum;
    return p;
  }
  const probs = (st) => softmax(logits(st), 1);
  // ids by probability, likeliest first, ties to the smaller id (the core's top_k)
  const ranked = (p) => Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);

  function read(text) {
    let st = h0;
    for (const c of text) {
      const id = idOf.get(c);
      if (id === undefined) throw new RangeError("not in the model's vocabulary: U+"
        + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"));
      st = step(st, id);
    }
    return st;
  }

  // -- the text box ------------------------------------------------------------------
  const section = el("section");
  section.id = "live";
  const left = el("div", "typing");
  left.appendChild(el("h2", null, "type to the model"));
  const box = el("textarea");
  box.id = "live-text";
  box.spellcheck = false;
  box.placeholder = "Type here: the model reads it from the state the text below starts from.";
  left.appendChild(box);
  const row = (label, node, title) => {
    const r = el("div", "row"), l = el("span", "hint", label);
    if (title) l.title = title;
    r.appendChild(l);
    r.appendChild(node);
    left.appendChild(r);
    return [node, l];
  };
  const [typedPre, unitLabel] = row("unit", el("pre"), "the chosen unit after each character");
  const [surprisePre] = row("surprise", el("pre"), "white 0 bits, red 12 bits or more");
  typedPre.id = "typed"; surprisePre.id = "typed-surprise"; unitLabel.id = "typed-unit";
  const stat = el("div");
  stat.id = "live-stat";
  left.appendChild(stat);
  const gen = el("div", "gen");
  const field = (label, id, value, attrs) => {
    const input = el("input");
    input.type = "number"; input.id = id; input.value = value;
    Object.keys(attrs).forEach((a) => input.setAttribute(a, attrs[a]));
    const l = el("label", null, label);
    l.htmlFor = id;
    gen.appendChild(l); gen.appendChild(input);
    return input;
  };
  const go = el("button", null, "Continue");
  go.id = "continue";
  gen.appendChild(go);
  const nIn = field("characters", "gen-n", "200", { min: "1", max: "100000" });
  const tIn = field("temperature", "gen-t", "1", { min: "0", step: "0.1" });
  const seedIn = field("seed", "gen-seed", "1", { min: "0" });
  const kIn = field("top-k", "gen-k", "0", { min: "0", max: String(V) });
  left.appendChild(gen);
  const generated = el("pre");
  generated.id = "generated";
  row("continued", generated, "characters drawn after the typed text");
  section.appendChild(left);
  const aside = el("aside");
  aside.appendChild(el("h2", null, "next character"));
  const guesses = el("table", "guesses");
  guesses.id = "live-guesses";
  aside.appendChild(guesses);
  section.appendChild(aside);
  document.body.insertBefore(section, document.querySelector("main"));

  // what was read: chars[i] typed, ids[i] (-1: not in the vocabulary, skipped), states[i + 1]
  // the state after it (states[0] = h0), bits[i] its surprise; a keystroke reads from the first
  // character that changed, so typing at the end costs one step
  const chars = [], ids = [], states = [h0], bits = [], spans = [], sspans = [];
  let shownUnit = 0, offset = 0, scale = 1;
  const times = [];                // ms per update (input event), layout included
  const setOffset = (name) => {    // where set "h", "c", "h1", "c2", ... sits in a state
    const layer = name.length > 1 ? Number(name.slice(1)) - 1 : L - 1;
    return layer * K * H + (name[0] === "c" ? H : 0);
  };
  const colour = (st) => {
    const v = st[offset + shownUnit] / scale;
    return view.palette[Math.round(Math.max(-1, Math.min(1, v)) * 127) + 127];
  };
  const heat = (b) =>          // surprise b bits: white (0) to red (12 or more)
    "rgba(200,40,40," + (0.75 * Math.pow(Math.min(b, 12) / 12, 0.8)).toFixed(3) + ")";

  function showGuesses(p) {
    guesses.textContent = "";
    ranked(p).slice(0, view.k).forEach((id) => {
      const tr = el("tr"), cellBar = el("td"), b = el("div", "pbar");
      tr.appendChild(el("td", "g", view.alone(vocab[id])));
      b.style.width = Math.max(1, Math.round(100 * p[id])) + "%";
      cellBar.appendChild(b);
      tr.appendChild(cellBar);
      tr.appendChild(el("td", "p", view.pct(p[id])));
      guesses.appendChild(tr);
    });
  }

  let pending = 0;
  function update() {
    const t0 = performance.now();
    clearTimeout(pending);
    const now = Array.from(box.value);
    let same = 0;
    while (same < chars.length && same < now.length && chars[same] === now[same]) same++;
    chars.length = ids.length = bits.length = same;
    states.length = same + 1;
    spans.splice(same).forEach((s) => s.remove());
    sspans.splice(same).forEach((s) => s.remove());
    let p = probs(states[same]);
    for (let i = same; i < now.length; i++) {
      if (i > same && performance.now() - t0 > 12) {   // a long paste: the rest in later tasks
        pending = setTimeout(update, 0);
        break;
      }
      const c = now[i], id = idOf.has(c) ? idOf.get(c) : -1, prev = states[i];
      const st = id < 0 ? prev : step(prev, id);
      const b = id < 0 ? NaN : -Math.log2(Math.max(p[id], 1e-300));
      chars.push(c); ids.push(id); bits.push(b); states.push(st);
      if (id >= 0) p = probs(st);
      const s = el("span", id < 0 ? "unknown" : null, view.inText(c));
      const q = el("span", id < 0 ? "unknown" : null, view.inText(c));
      s.style.backgroundColor = id < 0 ? "" : colour(st);
      q.style.backgroundColor = id < 0 ? "" : heat(b);
      s.title = q.title = id < 0 ? "not in the model's vocabulary: skipped"
        : "surprise " + b.toFixed(2) + " bits";
      typedPre.appendChild(s); surprisePre.appendChild(q);
      spans.push(s); sspans.push(q);
    }
    showGuesses(p);
    const known = bits.filter((b) => !Number.isNaN(b));
    const skipped = ids.filter((id) => id < 0).length;
    stat.textContent = !chars.length ? "Nothing typed yet: the guesses are for the first character."
      : (known.length ? "mean surprise " + (known.reduce((a, b) => a + b, 0) / known.length)
        .toFixed(2) + " bits/char over " + known.length + " characters; the last: "
        + (Number.isNaN(bits[bits.length - 1]) ? "skipped" : bits[bits.length - 1].toFixed(2)
          + " bits") : "")
      + (skipped ? " \u00b7 " + skipped + " not in the model's vocabulary (struck out, skipped)"
        : "") + (chars.length < now.length ? " \u00b7 reading: " + chars.length + " of "
        + now.length : "");
    void section.offsetHeight;      // the layout too, in the keystroke's time
    times.push(performance.now() - t0);
  }

  function recolour(set, unit) {
    shownUnit = unit; offset = setOffset(set.name); scale = set.scale[unit] || 1;
    unitLabel.textContent = set.name + "[" + unit + "]";
    for (let i = 0; i < spans.length; i++)
      if (ids[i] >= 0) spans[i].style.backgroundColor = colour(states[i + 1]);
  }

  // -- sampling ------------------------------------------------------------------------
  function mulberry32(seed) {        // a small seeded PRNG: uniforms in [0, 1)
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  // a draw from state st: temperature 0 (or top-k 1) greedy, else softmax(logits / T) over
  // the top-k likeliest (0: all), as charrnn-sample's --temperature and --top-k
  function draw(st, temperature, topk, rand) {
    const z = logits(st);
    if (!(temperature > 0)) return ranked(z)[0];
    const p = softmax(z, temperature);
    const pool = topk > 0 && topk < V ? ranked(p).slice(0, topk) : Array.from(p.keys());
    let total = 0;
    pool.forEach((id) => { total += p[id]; });
    let u = rand() * total;
    for (const id of pool) { u -= p[id]; if (u < 0) return id; }
    return pool[pool.length - 1];
  }
  let job = 0;
  function generate() {
    const n = Math.max(1, Math.min(100000, parseInt(nIn.value, 10) || 200));
    const temperature = Math.max(0, Number(tIn.value) || 0), topk = parseInt(kIn.value, 10) || 0;
    const rand = mulberry32(parseInt(seedIn.value, 10) || 0);
    const mine = ++job;
    let st = states[states.length - 1], done = 0;
    generated.textContent = "";
    delete generated.dataset.done;
    const chunk = () => {            // about 10 ms of steps per frame, shown as they come
      if (mine !== job) return;
      const t0 = performance.now();
      let out = "";
      while (done < n && performance.now() - t0 < 10) {
        const id = draw(st, temperature, topk, rand);
        out += vocab[id];
        st = step(st, id);
        done++;
      }
      generated.appendChild(document.createTextNode(out));
      if (done < n) setTimeout(chunk, 0);
      else generated.dataset.done = "1";
    };
    chunk();
  }

  box.addEventListener("input", update);
  go.addEventListener("click", generate);
  view.onShow(recolour);
  const [set0, unit0] = view.current();
  recolour(set0, unit0);
  update();

  Object.defineProperty(window, "charrnn", { value: Object.freeze({
    vocab: vocab.slice(),
    // the probabilities of the next character after reading text from the page's start
    next: (text) => Array.from(probs(read(String(text)))),
    keystrokeMs: () => times.slice(),   // the text box's updates, each in ms
  }) });
})();
"""
