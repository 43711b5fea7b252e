/* recursa view: the page's own script (no network; data is inline, parsed on demand).
 * Overview (charts, settings, problem table with filters) and, per problem, the population
 * lineage of each run as SVG. Nodes carry data-problem, data-step, data-slot, data-correct
 * ("1"/"0", "" when ungraded), data-parents (slots of the previous step) and data-run. */
(function () {
  "use strict";
  const OV = JSON.parse(document.getElementById("recursa-data").textContent);
  let RUNS = OV.runs;
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2",
    "#ff9da7", "#9c755f", "#e15759", "#8cd17d", "#86bcb6", "#d37295", "#a0cbe8", "#ffbe7d"];
  const RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    "#8c564b", "#e377c2"];
  const ARC = ["#000000", "#0074d9", "#ff4136", "#2ecc40", "#ffdc00", "#aaaaaa", "#f012be",
    "#ff851b", "#7fdbff", "#870c25"];
  const METRICS = [
    ["mean_acc", "mean", []], ["majority_acc", "majority", [6, 3]],
    ["pass_at_n", "pass@N", [2, 3]], ["mean_score", "raw score", [10, 3, 2, 3]],
    ["pass_at_2", "pass@2", [1, 4]]];
  const PAGE = 100;
  const SVGNS = "http://www.w3.org/2000/svg";
  const cache = new Map();
  const charts = new Map();
  const state = { filter: "all", q: "", sort: "i", dir: 1, page: 0, problem: null, node: null };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined)
      e.append(typeof kid === "string" ? document.createTextNode(kid) : kid);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
    return e;
  }
  const pct = (v) => (v === null || v === undefined ? "" : (100 * v).toFixed(1) + "%");
  const mark = (ok) => (ok === null || ok === undefined ? "…" : ok ? "✓" : "✗");
  const clusterColor = (c) => (c < 0 ? "#cccccc" : c < PALETTE.length ? PALETTE[c] : "#bbbbbb");

  // ---- data on demand: an inline block (a file), or the live server ----------------
  async function loadLineage(run, index) {
    const key = run + "-" + index;
    if (!cache.has(key)) {
      let data = null;
      if (OV.live) {
        const r = await fetch(`lineage?run=${run}&i=${index}`, { cache: "no-store" });
        data = r.ok ? await r.json() : null;
      } else {
        const holder = document.getElementById("d" + key);
        data = holder ? JSON.parse(holder.textContent) : null;
      }
      cache.set(key, data);
    }
    return cache.get(key);
  }
  const lineage = (run, index) => cache.get(run + "-" + index) || null;

  // ---- overview: problems across runs -----------------------------------------------
  function buildRows() {
    const byId = new Map();
    RUNS.forEach((run, r) => run.rows.forEach((row) => {
      let entry = byId.get(row.id);
      if (!entry) {
        entry = { id: row.id, i: row.i, task: row.task, runs: RUNS.map(() => null), idx: RUNS.map(() => -1) };
        byId.set(row.id, entry);
      }
      entry.runs[r] = row; entry.idx[r] = row.i;
    }));
    return Array.from(byId.values());
  }
  let ROWS = buildRows();

  const FILTERS = {
    all: ["all", () => true],
    changed: ["RSA changed the outcome", (e) => e.runs.some((r) => r && r.changed)],
    fixed: ["fixed by RSA", (e) => e.runs.some((r) => r && r.changed === "fixed")],
    broke: ["broken by RSA", (e) => e.runs.some((r) => r && r.changed === "broke")],
    herded: ["population herded", (e) => e.runs.some((r) => r && r.herded)],
    wrong: ["wrong at the end", (e) => e.runs.some((r) => r && r.ok === false)],
    right: ["right at the end", (e) => e.runs.some((r) => r && r.ok === true)],
    running: ["running", (e) => e.runs.some((r) => r && r.state === "running")],
  };
  if (RUNS.length > 1) FILTERS.disagree = ["runs disagree", (e) => {
    const seen = new Set(e.runs.filter((r) => r && r.ok !== null).map((r) => r.ok));
    return seen.size > 1;
  }];

  function sortKey(e, key) {
    if (key === "i") return e.i;
    if (key === "id") return e.id;
    if (key === "task") return e.task || "";
    const [what, r] = key.split(":");
    const row = e.runs[+r];
    if (!row) return -2;
    if (what === "ok") return row.ok === null ? -1 : +row.ok;
    if (what === "agr") return row.agr ? row.agr[row.agr.length - 1] : -1;
    if (what === "acc") return row.acc ? row.acc[row.acc.length - 1] : -1;
    if (what === "answer") return row.answer || "";
    return 0;
  }

  function visibleRows() {
    const test = FILTERS[state.filter] ? FILTERS[state.filter][1] : FILTERS.all[1];
    const q = state.q.toLowerCase();
    let rows = ROWS.filter((e) => test(e) && (!q || e.id.toLowerCase().includes(q) ||
      e.runs.some((r) => r && ((r.answer || "").toLowerCase().includes(q) ||
        (r.reference || "").toLowerCase().includes(q)))));
    rows = rows.slice().sort((a, b) => {
      const x = sortKey(a, state.sort), y = sortKey(b, state.sort);
      return (x < y ? -1 : x > y ? 1 : a.i - b.i) * state.dir;
    });
    return rows;
  }

  function renderFilters() {
    const box = document.getElementById("filters");
    box.textContent = "";
    for (const [name, [label, test]] of Object.entries(FILTERS)) {
      const count = ROWS.filter(test).length;
      box.append(el("button", {
        id: "filter-" + name, class: state.filter === name ? "on" : "", "data-count": count,
        onclick: () => { state.filter = name; state.page = 0; update(); },
      }, `${label} (${count})`));
    }
  }

  function renderTable() {
    const table = document.getElementById("problem-table");
    table.textContent = "";
    const head = el("tr");
    const th = (key, label, title) => el("th", {
      "data-sort": key, title, class: state.sort === key ? (state.dir > 0 ? "asc" : "desc") : "",
      onclick: () => { state.dir = state.sort === key ? -state.dir : 1; state.sort = key; update(); },
    }, label);
    head.append(th("i", "#"), th("id", "problem"), th("task", "task"));
    RUNS.forEach((run, r) => {
      const tag = RUNS.length > 1 ? ` [${r + 1}]` : "";
      head.append(th("ok:" + r, "final" + tag, run.label), th("answer:" + r, "answer" + tag),
        th("acc:" + r, "mean acc" + tag, "step 1 → last"), th("agr:" + r, "agreement" + tag, "step 1 → last"),
        el("th", {}, "flags" + tag));
    });
    head.append(el("th", {}, "reference"));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    const rows = visibleRows();
    const start = state.page * PAGE;
    for (const e of rows.slice(start, start + PAGE)) {
      const tr = el("tr", {
        "data-problem": e.id, class: e.id === state.problem ? "sel" : "",
        onclick: () => openProblem(e.id),
      }, el("td", {}, String(e.i + 1)), el("td", { class: "pid" }, e.id), el("td", {}, e.task || ""));
      e.runs.forEach((row) => {
        if (!row) { tr.append(el("td", { colspan: 5, class: "na" }, "not in this run")); return; }
        const seq = (xs, f) => (xs && xs.length ? f(xs[0]) + (xs.length > 1 ? " → " + f(xs[xs.length - 1]) : "") : "");
        const flags = [];
        if (row.changed === "fixed") flags.push(el("span", { class: "flag fixed" }, "fixed"));
        if (row.changed === "broke") flags.push(el("span", { class: "flag broke" }, "broke"));
        if (row.herded) flags.push(el("span", { class: "flag herd" }, "herded"));
        if (row.state === "running") flags.push(el("span", { class: "flag run" }, "running"));
        tr.append(el("td", { class: row.ok ? "ok" : row.ok === false ? "bad" : "" }, mark(row.ok)),
          el("td", { class: "ans" }, row.answer || ""), el("td", {}, seq(row.acc, pct)),
          el("td", {}, seq(row.agr, pct)), el("td", {}, ...flags));
      });
      const ref = e.runs.find((r) => r && r.reference);
      tr.append(el("td", { class: "ans" }, ref ? ref.reference : ""));
      body.append(tr);
    }
    table.append(body);
    const pager = document.getElementById("pager");
    pager.textContent = "";
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    pager.append(
      el("button", { id: "page-prev", disabled: state.page === 0 ? "" : null, onclick: () => { state.page--; update(); } }, "‹"),
      el("span", { id: "row-count", "data-rows": rows.length },
        ` ${rows.length ? start + 1 : 0}–${Math.min(start + PAGE, rows.length)} of ${rows.length} problems (page ${state.page + 1}/${pages}) `),
      el("button", { id: "page-next", disabled: start + PAGE >= rows.length ? "" : null, onclick: () => { state.page++; update(); } }, "›"));
  }

  // ---- overview: settings and charts ------------------------------------------------
  function renderSettings() {
    const table = document.getElementById("settings-table");
    table.textContent = "";
    document.getElementById("raw-settings").textContent = "";
    const keys = Object.keys(RUNS[0].settings);
    table.append(el("tr", {}, el("th", {}, ""), ...RUNS.map((run, r) =>
      el("th", { style: `color:${RUN_COLORS[r % RUN_COLORS.length]}` }, `[${r + 1}] ${run.label}`))));
    for (const key of keys) {
      table.append(el("tr", {}, el("th", {}, key), ...RUNS.map((run) => {
        const v = run.settings[key];
        return el("td", {}, v === null || v === undefined ? "" : key === "final accuracy" ? pct(v) : String(v));
      })));
    }
    table.append(el("tr", {}, el("th", {}, "status"), ...RUNS.map((run) =>
      el("td", {}, run.finished ? "finished" : `running: ${run.done} of ${run.total} problems done`))));
    const raw = document.getElementById("raw-settings");
    RUNS.forEach((run) => raw.append(el("details", {}, el("summary", {}, `${run.label}: settings.json`),
      el("pre", {}, JSON.stringify(run.raw_settings, null, 2)))));
    RUNS.forEach((run) => { if (run.problems_note) raw.append(el("p", { class: "note" }, `${run.label}: ${run.problems_note}`)); });
  }

  function chartSeries() {
    const series = [];
    RUNS.forEach((run, r) => METRICS.forEach(([key, name, dash]) => {
      if (run.curve.some((line) => line[key] !== undefined && line[key] !== null))
        series.push({ run: r, key, label: `[${r + 1}] ${name}`, dash, color: RUN_COLORS[r % RUN_COLORS.length] });
    }));
    return series;
  }

  function chart(target, xKey, xLabel, title) {
    const series = chartSeries();
    const xs = Array.from(new Set(RUNS.flatMap((run) => run.curve.map((l) => l[xKey])))).sort((a, b) => a - b);
    const data = [xs];
    for (const s of series) {
      const at = new Map(RUNS[s.run].curve.map((l) => [l[xKey], l[s.key]]));
      data.push(xs.map((x) => (at.has(x) && at.get(x) !== null && at.get(x) !== undefined ? 100 * at.get(x) : null)));
    }
    const avail = document.getElementById("overview").clientWidth || 1200;
    const width = Math.max(300, Math.min(520, (avail - 180 - 190 * RUNS.length) / 2));
    const opts = {
      title, width, height: 240, legend: { live: false },
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [{ label: xLabel, incrs: xKey === "step" ? [1, 2, 5, 10] : undefined }, { label: "accuracy (%)" }],
      series: [{ label: xLabel }, ...series.map((s) => ({
        label: s.label, stroke: s.color, dash: s.dash, width: 2, spanGaps: true,
        points: { show: true, size: 6 }, value: (u, v) => (v === null ? "–" : v.toFixed(1)),
      }))],
    };
    target.textContent = "";
    if (typeof uPlot === "undefined") { target.textContent = "charting library missing"; return; }
    if (charts.has(target.id)) charts.get(target.id).destroy();
    charts.set(target.id, new uPlot(opts, data, target));
  }

  // ---- one problem: lineages -------------------------------------------------------
  function ancestors(data, step, slot) {
    const found = new Set([step + "." + slot]);
    let frontier = [[step, slot]];
    while (frontier.length) {
      const next = [];
      for (const [t, s] of frontier) {
        const st = data.steps.find((x) => x.step === t);
        if (!st || !st.nodes[s]) continue;
        for (const p of st.nodes[s].parents) {
          const key = (t - 1) + "." + p;
          if (!found.has(key)) { found.add(key); next.push([t - 1, p]); }
        }
      }
      frontier = next;
    }
    return found;
  }

  // One colour per answer across the runs shown for a problem (clusters of run 1 first).
  let colourOf = new Map();
  function assignColours(datas) {
    colourOf = new Map();
    for (const data of datas) data.clusters.forEach((c) => {
      const key = c.answer === null ? null : String(c.answer);
      if (key !== null && !colourOf.has(key)) colourOf.set(key, colourOf.size);
    });
  }
  function nodeColour(data, cl) {
    const c = data.clusters[cl];
    if (!c || c.answer === null) return clusterColor(-1);
    return clusterColor(colourOf.has(String(c.answer)) ? colourOf.get(String(c.answer)) : cl);
  }

  function drawLineage(r, data, pid) {
    const steps = data.steps;
    const n = Math.max(1, ...steps.map((s) => s.nodes.length));
    const colW = 120, rowH = Math.max(22, Math.min(40, 560 / n)), rad = Math.min(10, rowH / 2.6);
    const left = 50, top = 46;
    const W = left + steps.length * colW, H = top + n * rowH + 10;
    const g = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "lineage-svg", "data-run": r });
    const x = (i) => left + i * colW + colW / 2 - 30, y = (s) => top + s * rowH + rowH / 2;
    const finalSlot = data.final ? data.final.slot : null;
    const colOf = new Map(steps.map((s, i) => [s.step, i]));
    steps.forEach((st, i) => {
      const head = svg("text", { x: x(i), y: 16, "text-anchor": "middle", class: "colhead" });
      head.textContent = "step " + st.step;
      g.append(head);
      if (st.agreement !== null && st.agreement !== undefined) {
        const sub = svg("text", { x: x(i), y: 32, "text-anchor": "middle", class: "colsub" });
        sub.textContent = `agree ${pct(st.agreement)} · maj ${mark(st.majority_correct)}`;
        g.append(sub);
      }
    });
    const edges = svg("g", { class: "edges" });
    g.append(edges);
    steps.forEach((st, i) => st.nodes.forEach((node) => {
      if (!colOf.has(st.step - 1)) return;
      const pi = colOf.get(st.step - 1);
      for (const p of node.parents) edges.append(svg("line", {
        x1: x(pi) + rad, y1: y(p), x2: x(i) - rad, y2: y(node.slot), class: "edge",
        "data-from": (st.step - 1) + "." + p, "data-to": st.step + "." + node.slot,
      }));
    }));
    steps.forEach((st, i) => st.nodes.forEach((node) => {
      const last = i === steps.length - 1;
      const grp = svg("g", {
        class: "node", transform: `translate(${x(i)},${y(node.slot)})`, tabindex: 0,
        "data-run": r, "data-problem": pid, "data-step": st.step, "data-slot": node.slot,
        "data-correct": node.ok === null || node.ok === undefined ? "" : String(node.ok),
        "data-parents": node.parents.join(","), "data-cluster": node.cl,
      });
      if (last && finalSlot === node.slot) grp.append(svg("circle", { r: rad + 5, class: "selected-ring" }));
      grp.append(svg("circle", { r: rad, fill: nodeColour(data, node.cl), class: node.ok === 1 ? "good" : node.ok === 0 ? "bad" : "ungraded" }));
      const t = svg("text", { x: rad + 3, y: 4, class: node.ok === 1 ? "m-good" : "m-bad" });
      t.textContent = node.ok === 1 ? "✓" : node.ok === 0 ? "✗" : "";
      grp.append(t);
      if (node.verdict !== undefined) {
        const v = svg("text", { x: -rad - 12, y: 4, class: node.verdict ? "verdict yes" : "verdict no" });
        v.textContent = node.verdict === null ? "?" : node.verdict ? "T" : "F";
        grp.append(v);
      }
      const tip = svg("title");
      tip.textContent = `step ${st.step} slot ${node.slot}: ${node.answer === null ? "(no answer)" : node.answer}`;
      grp.append(tip);
      grp.addEventListener("mouseenter", () => highlight(g, data, st.step, node.slot));
      grp.addEventListener("mouseleave", () => highlight(g, null));
      grp.addEventListener("click", () => showNode(r, data, st.step, node.slot));
      g.append(grp);
    }));
    return g;
  }

  function highlight(g, data, step, slot) {
    g.classList.toggle("hovering", !!data);
    const anc = data ? ancestors(data, step, slot) : new Set();
    g.querySelectorAll(".node").forEach((e) => e.classList.toggle("anc", anc.has(e.dataset.step + "." + e.dataset.slot)));
    g.querySelectorAll(".edge").forEach((e) => e.classList.toggle("anc", anc.has(e.dataset.from) && anc.has(e.dataset.to)));
  }

  function legend(data) {
    const box = el("div", { class: "legend" });
    const okOf = new Map();
    data.steps.forEach((st) => st.nodes.forEach((n) => { if (n.ok !== null && n.ok !== undefined) okOf.set(n.cl, n.ok); }));
    data.clusters.forEach((c, i) => box.append(el("span", { class: "swatch-item" },
      el("span", { class: "swatch", style: `background:${nodeColour(data, i)}` }),
      `${c.answer === null ? "(no answer)" : clip(c.answer, 40)} ×${c.size} ${okOf.has(i) ? mark(okOf.get(i)) : ""}`)));
    return box;
  }
  const clip = (s, n) => { s = String(s).replace(/\s+/g, " "); return s.length > n ? s.slice(0, n - 1) + "…" : s; };

  function grid(cells, label) {
    if (!cells) return el("div", { class: "grid-box" }, label ? el("div", {}, label + ": (none)") : null);
    const table = el("table", { class: "arc-grid" });
    for (const row of cells) table.append(el("tr", {}, ...row.map((c) => el("td", { style: `background:${ARC[c] || "#fff"}`, title: String(c) }))));
    return el("div", { class: "grid-box" }, label ? el("div", {}, label) : null, table);
  }

  async function openProblem(pid, keepNode) {
    state.problem = pid;
    if (!keepNode) state.node = null;
    writeHash();
    const entry = ROWS.find((e) => e.id === pid);
    if (entry) await Promise.all(entry.runs.map((row, r) => (row ? loadLineage(r, entry.idx[r]) : null)));
    if (state.problem !== pid) return; // another problem was chosen meanwhile
    const view = document.getElementById("problem-view");
    view.textContent = "";
    view.dataset.problem = pid;
    document.querySelectorAll("#problem-table tr.sel").forEach((tr) => tr.classList.remove("sel"));
    const tr = document.querySelector(`#problem-table tr[data-problem="${CSS.escape(pid)}"]`);
    if (tr) tr.classList.add("sel");
    if (!entry) { view.append(el("p", {}, "no such problem: " + pid)); return; }
    view.append(el("h2", { id: "problem-title" }, `problem ${pid}`));
    let shownQuestion = false;
    assignColours(entry.runs.map((row, r) => (row ? lineage(r, entry.idx[r]) : null)).filter((d) => d));
    entry.runs.forEach((row, r) => {
      if (!row) return;
      const data = lineage(r, entry.idx[r]);
      if (!data) return;
      if (!shownQuestion) {
        shownQuestion = true;
        if (data.question) view.append(el("details", { class: "question" }, el("summary", {}, "question"), el("pre", {}, data.question)));
        else if (data.note) view.append(el("p", { class: "note" }, data.note));
        if (data.reference !== null && data.reference !== undefined) view.append(el("div", { class: "ref" }, "reference: ", el("code", {}, String(data.reference))));
        if (data.arc) {
          const ex = el("div", { class: "arc-examples" });
          (data.arc.train || []).forEach((p, k) => ex.append(el("div", { class: "pair" }, grid(p.input, `example ${k + 1} in`), grid(p.output, "out"))));
          if (data.arc.test_input) ex.append(el("div", { class: "pair" }, grid(data.arc.test_input, "test input"), grid(data.arc.reference, "reference")));
          view.append(ex);
        }
      }
      const box = el("div", { class: "lineage", "data-run": r },
        el("h3", { style: `color:${RUN_COLORS[r % RUN_COLORS.length]}` },
          `[${r + 1}] ${RUNS[r].label}: ${row.state === "running" ? "running" : "final " + mark(row.ok)}` +
          (data.final ? ` (answer ${clip(data.final.answer === null ? "none" : data.final.answer, 40)}, slot ${data.final.slot})` : "")),
        legend(data), drawLineage(r, data, pid));
      view.append(box);
    });
    view.append(el("div", { id: "node-detail", class: "empty" }, "Click a node to see its text, grade and prompt; hover to see its ancestry."));
    if (state.node && state.node.problem === pid) {
      const d = lineage(state.node.run, entry.idx[state.node.run]);
      if (d) showNode(state.node.run, d, state.node.step, state.node.slot);
    }
  }

  function foldThink(text) {
    const box = el("div", { class: "completion" });
    const re = /<think>([\s\S]*?)(<\/think>|$)/gi;
    let last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) box.append(el("pre", {}, text.slice(last, m.index)));
      box.append(el("details", { class: "think" }, el("summary", {}, `<think> (${m[1].length} characters)`), el("pre", {}, m[1])));
      last = m.index + m[0].length;
      if (m[0].length === 0) break;
    }
    if (last < text.length) box.append(el("pre", {}, text.slice(last)));
    return box;
  }

  function promptText(data, stepNodes, prompt) {
    const parts = [];
    for (const m of prompt.messages) {
      const text = m.seg.map((s) => {
        if (typeof s === "number") return data.strings[s];
        const node = stepNodes[s[0]];
        return node ? (node.shown !== undefined ? node.shown : node.text) : "";
      }).join("");
      parts.push([m.role, text]);
    }
    return parts;
  }

  function promptBlock(title, data, stepNodes, prompt) {
    const checks = { match: "✓ identical to the request the engine sent (journal hash)",
      mismatch: "✗ rebuilt, but not identical to the journaled request", unchecked: "rebuilt (not checked)",
      built: "built by the engine's prompt functions with the model's own token counter" };
    const body = el("div", { class: "prompt" });
    for (const [role, text] of promptText(data, stepNodes, prompt)) body.append(el("div", { class: "role" }, role), el("pre", { class: "prompt-text" }, text));
    return el("details", { class: "prompt-box" }, el("summary", {}, title + " — ",
      el("span", { class: "check " + prompt.check, "data-check": prompt.check }, checks[prompt.check] || prompt.check),
      prompt.note ? " (" + prompt.note + ")" : ""), body);
  }

  function showNode(r, data, step, slot) {
    const st = data.steps.find((s) => s.step === step);
    const node = st && st.nodes[slot];
    const box = document.getElementById("node-detail");
    if (!node || !box) return;
    state.node = { run: r, problem: state.problem, step, slot };
    writeHash();
    document.querySelectorAll(".node.clicked").forEach((e) => e.classList.remove("clicked"));
    const sel = document.querySelector(`.lineage-svg[data-run="${r}"] .node[data-step="${step}"][data-slot="${slot}"]`);
    if (sel) sel.classList.add("clicked");
    box.className = "";
    box.textContent = "";
    box.dataset.run = r; box.dataset.step = step; box.dataset.slot = slot;
    box.append(el("h3", {}, `[${r + 1}] step ${step}, slot ${slot}`));
    const facts = el("table", { class: "facts" });
    const fact = (k, v) => facts.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
    fact("answer", el("code", { class: "answer" }, node.answer === null ? "(none extracted)" : node.answer));
    if (node.grid) fact("answer grid", grid(node.grid));
    fact("grade", node.score === null ? "not graded yet" :
      `${mark(node.ok)} score ${node.score}` + (node.reason ? ` — ${node.reason}` : ""));
    if (node.failed_test && data.tests && node.failed_test.public && data.tests[node.failed_test.index]) {
      const t = data.tests[node.failed_test.index];
      fact("failing test", el("div", {}, el("div", {}, "input"), el("pre", {}, t.input), el("div", {}, "expected"), el("pre", {}, t.output)));
    }
    fact("tokens", `${node.pt} prompt + ${node.ct} completion` + (node.fin ? ` (finish: ${node.fin})` : ""));
    fact("parents", step > 1 && node.parents.length ? `slots ${node.parents.join(", ")} of step ${step - 1}` : "none (a fresh sample from the plain prompt)");
    if (node.verdict !== undefined) fact("self-verification", `${node.verdict === null ? "no verdict" : node.verdict ? "judged True" : "judged False"}` + (node.vtext ? ` — reply: ${clip(node.vtext, 200)}` : ""));
    box.append(facts);
    box.append(el("h4", {}, "completion"), foldThink(node.text));
    if (node.summary !== undefined) box.append(el("h4", {}, "summary (what the next step was shown)"), foldThink(node.summary));
    const prev = data.steps.find((s) => s.step === step - 1);
    if (node.prompt) box.append(promptBlock("prompt", data, prev ? prev.nodes : [], node.prompt));
    if (node.vprompt) box.append(promptBlock("self-verification prompt", data, st.nodes, node.vprompt));
  }

  // ---- state in the address (survives live reloads) --------------------------------
  function writeHash() {
    const p = new URLSearchParams();
    if (state.filter !== "all") p.set("filter", state.filter);
    if (state.q) p.set("q", state.q);
    if (state.sort !== "i" || state.dir !== 1) p.set("sort", state.sort + (state.dir < 0 ? ":desc" : ""));
    if (state.page) p.set("page", state.page);
    if (state.problem !== null) p.set("problem", state.problem);
    if (state.node) p.set("node", `${state.node.run}.${state.node.step}.${state.node.slot}`);
    history.replaceState(null, "", "#" + p.toString());
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    state.filter = p.get("filter") || "all";
    state.q = p.get("q") || "";
    const sort = p.get("sort");
    if (sort) { state.dir = sort.endsWith(":desc") ? -1 : 1; state.sort = sort.replace(/:desc$/, ""); }
    state.page = +(p.get("page") || 0);
    state.problem = p.get("problem");
    const node = p.get("node");
    if (node && state.problem !== null) {
      const [run, step, slot] = node.split(".").map(Number);
      state.node = { run, step, slot, problem: state.problem };
    }
  }

  function update() { renderFilters(); renderTable(); writeHash(); }

  function init() {
    readHash();
    document.getElementById("title").textContent = OV.title;
    const q = document.getElementById("filter-text");
    q.value = state.q;
    q.addEventListener("input", () => { state.q = q.value; state.page = 0; update(); });
    renderOverview();
    const first = state.problem !== null ? openProblem(state.problem, true)
      : ROWS.length === 1 ? openProblem(ROWS[0].id) : Promise.resolve();
    if (OV.live) {
      const badge = document.getElementById("live");
      badge.hidden = false;
      let busy = false;
      setInterval(() => {
        if (busy) return;
        busy = true;
        fetch("version", { cache: "no-store" }).then((r) => r.text())
          .then((v) => (v && v !== OV.version ? refresh() : null))
          .then(() => { badge.textContent = "live"; })
          .catch(() => { badge.textContent = "live: server gone"; })
          .finally(() => { busy = false; });
      }, OV.poll_ms || 2000);
    }
    first.finally(() => { document.body.dataset.ready = "1"; });
  }

  function renderOverview() {
    renderSettings();
    chart(document.getElementById("chart-step"), "step", "step", "Accuracy by step");
    chart(document.getElementById("chart-tokens"), "cumulative_tokens", "cumulative tokens", "Accuracy by compute");
    update();
  }

  // Live: the run changed; take the new overview and re-open what the reader had open.
  async function refresh() {
    const r = await fetch("overview", { cache: "no-store" });
    if (!r.ok) throw new Error("overview: " + r.status);
    const ov = await r.json();
    OV.runs = ov.runs; OV.version = ov.version;
    RUNS = OV.runs; ROWS = buildRows();
    cache.clear();
    renderOverview();
    if (state.problem !== null) await openProblem(state.problem, true);
    document.body.dataset.version = OV.version;
  }
  init();
})();
