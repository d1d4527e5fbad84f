/* Saídas' client section at any number of clients: the spread across clients per round,
   one round's clients (sorted by any column, paged) and the partition's label mix as
   stacked bars. Everything is fetched from the client routes, whose answers are bounded;
   the live stream only says when to fetch again (experiment.js's "flautim:event"). */
(function () {
  "use strict";
  var box = document.getElementById("clients-section");
  var root = document.getElementById("experiment");
  if (!box || !root) return;
  var Charts = window.FlautimCharts;
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = 10;
  function $(id) { return document.getElementById(id); }
  function T(name, values) {
    var text = box.getAttribute("data-label-" + name) || "";
    Object.keys(values || {}).forEach(function (k) { text = text.replace("{" + k + "}", String(values[k])); });
    return text;
  }
  function get(url, params) {
    var query = Object.keys(params).filter(function (k) { return params[k] !== null && params[k] !== undefined; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
    return fetch(url + (query ? "?" + query : ""), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; });
  }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function fmt(v) { return num(v) === null ? "—" : Charts.format(v); }
  function count(v) { return num(v) === null ? "—" : String(Math.round(v)); }
  function pct(v) { return num(v) === null ? "—" : (v * (v <= 1 ? 100 : 1)).toFixed(2) + "%"; }
  // Accuracies read as percentages; other metrics (MSE, MAE) as plain numbers.
  function metricText(name, v) { return /acc/i.test(name || "") ? pct(v) : fmt(v); }
  function row(body, cells, attrs) {
    var tr = document.createElement("tr");
    Object.keys(attrs || {}).forEach(function (k) { tr.setAttribute(k, attrs[k]); });
    cells.forEach(function (text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
    body.appendChild(tr);
  }

  // --- the spread across clients, per round (the newest rounds) ------------------------
  var phase = $("clients-phase");
  function loadSpread() {
    return get(box.getAttribute("data-summary-url"), { phase: phase.value, limit: 20 }).then(function (s) {
      if (!s || !s.rounds.length) return;
      var body = $("clients-spread-body");
      body.textContent = "";
      s.rounds.slice().reverse().forEach(function (r) {
        row(body, [String(r.round), String(r.clients), fmt(r.loss.min), fmt(r.loss.q1), fmt(r.loss.median),
          fmt(r.loss.q3), fmt(r.loss.max), count(r.examples.min), count(r.examples.median), count(r.examples.max),
          String(r.examples.total)], { "data-round": r.round });
      });
    });
  }
  phase.addEventListener("change", loadSpread);

  // --- one round's clients -------------------------------------------------------------
  // metric: the clients' metric the table shows (the accuracy unless a page part names
  // another, e.g. the run's headline metric, through setClientMetric).
  var view = { round: null, sort: "client", order: "asc", offset: 0, limit: 50, metric: null };
  var roundInput = $("clients-round");
  function loadTable() {
    return get(box.getAttribute("data-table-url"), view).then(function (t) {
      if (!t || t.round === null) return;
      var body = $("clients-body");
      body.textContent = "";
      t.items.forEach(function (c) {
        row(body, ["client-" + c.client, count(c.examples), fmt(c.train_loss), metricText(t.metric, c.train_metric),
          fmt(c.evaluate_loss), metricText(t.metric, c.evaluate_metric), num(c.duration_s) === null ? "—" : c.duration_s.toFixed(2) + " s"],
          { "data-client": c.client });
      });
      if (document.activeElement !== roundInput) roundInput.value = String(t.round);
      roundInput.max = String(t.last_round);
      $("clients-range").textContent = t.total ? T("range", { first: t.offset + 1, last: t.offset + t.items.length, total: t.total }) : "";
      $("clients-prev").disabled = t.offset <= 0;
      $("clients-next").disabled = t.offset + t.items.length >= t.total;
      if (!/acc/i.test(t.metric)) {
        box.querySelector("button.sort[data-sort=train_metric]").textContent = T("metric-train", { name: t.metric });
        box.querySelector("button.sort[data-sort=evaluate_metric]").textContent = T("metric-evaluate", { name: t.metric });
      }
      box.querySelectorAll("button.sort").forEach(function (b) {
        var on = b.getAttribute("data-sort") === t.sort;
        b.classList.toggle("sorted", on);
        b.parentNode.setAttribute("aria-sort", on ? (t.order === "desc" ? "descending" : "ascending") : "none");
      });
    });
  }
  box.querySelectorAll("button.sort").forEach(function (b) {
    b.addEventListener("click", function () {
      var key = b.getAttribute("data-sort");
      // A second click on the same column turns the order round.
      view.order = view.sort === key && view.order === "asc" ? "desc" : "asc";
      view.sort = key;
      view.offset = 0;
      loadTable();
    });
  });
  $("clients-prev").addEventListener("click", function () { view.offset = Math.max(0, view.offset - view.limit); loadTable(); });
  $("clients-next").addEventListener("click", function () { view.offset += view.limit; loadTable(); });
  roundInput.addEventListener("change", function () {
    var n = parseInt(roundInput.value, 10);
    // An empty box follows the newest round again.
    view.round = isFinite(n) && n >= 0 ? n : null;
    view.offset = 0;
    loadTable();
  });

  // --- the partition's label mix, as stacked bars ---------------------------------------
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    parent.appendChild(node);
    return node;
  }
  function drawMix(m) {
    var svg = $("label-mix");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 560, H = 240, left = 40, right = 8, top = 8, bottom = 30;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("data-bars", String(m.bars.length));
    var step = (W - left - right) / Math.max(1, m.bars.length), h = H - top - bottom;
    [0, 0.5, 1].forEach(function (f) {
      var y = top + h * (1 - f);
      el("line", { x1: left, x2: W - right, y1: y, y2: y, "class": "grid" }, svg);
      el("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, svg).textContent = Math.round(f * 100) + "%";
    });
    m.bars.forEach(function (b, i) {
      var parts = b.counts.concat([b.other]), total = parts.reduce(function (a, n) { return a + n; }, 0);
      var x = left + i * step, y = top + h, g = el("g", { "class": "bar", "data-client": b.client }, svg);
      el("title", {}, g).textContent = T("client") + " " + b.client + ": " + parts.map(function (n, j) {
        return (j < m.labels.length ? T("label") + " " + m.labels[j] : T("other")) + " " + n;
      }).filter(function (_t, j) { return parts[j] > 0; }).join(", ");
      if (!total) return;
      parts.forEach(function (n, j) {
        if (!n) return;
        var bh = h * n / total;
        y -= bh;
        el("rect", { x: x + step * 0.1, y: y, width: Math.max(0.5, step * 0.8), height: bh,
          "class": j < m.labels.length ? "mix-" + (j % PALETTE) : "mix-other" }, g);
      });
    });
    // Client ids under the first, middle and last bars.
    [0, Math.floor((m.bars.length - 1) / 2), m.bars.length - 1].filter(function (v, i, a) { return a.indexOf(v) === i; })
      .forEach(function (i) {
        el("text", { x: left + (i + 0.5) * step, y: H - 12, "text-anchor": "middle" }, svg).textContent = String(m.bars[i].client);
      });
    el("text", { x: (W + left) / 2, y: H - 1, "text-anchor": "middle" }, svg).textContent = T("client");
  }
  function showMix(m) {
    if (!m || !m.clients_total) { $("label-mix-note").textContent = T("waiting"); return false; }
    drawMix(m);
    var legend = $("label-mix-legend");
    legend.textContent = "";
    m.labels.concat(m.other_labels ? [null] : []).forEach(function (label, j) {
      var sw = document.createElement("span");
      sw.className = "swatch " + (label === null ? "mix-other" : "mix-" + (j % PALETTE));
      legend.appendChild(sw);
      legend.appendChild(document.createTextNode(label === null ? T("other") + " (" + m.other_labels + ")" : T("label") + " " + label));
    });
    $("partition-method").textContent = m.method ? "· " + T("method") + ": " + m.method : "";
    var notes = [];
    if (m.sampled) notes.push(T("sampled", { n: m.bars.length, total: m.clients_total }));
    notes.push(T("single", { n: m.single_label_clients, total: m.clients_total }));
    $("label-mix-note").textContent = notes.join(" ");
    return true;
  }
  var mixShown = false;
  function loadMix() {
    return get(box.getAttribute("data-mix-url"), { bars: 100, labels: PALETTE }).then(function (m) { mixShown = showMix(m); });
  }

  // --- following the run -----------------------------------------------------------------
  // A round's aggregate arrives once every client of it reported: fetch then, at most
  // once a second however fast rounds go.
  var timer = null;
  function refresh() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; loadSpread(); loadTable(); if (!mixShown) loadMix(); }, 1000);
  }
  root.addEventListener("flautim:event", function (e) {
    var type = e.detail && e.detail.type;
    if (type === "partition_summary") loadMix();
    else if (type === "aggregated" || type === "run_finished") refresh();
  });
  // For the page's other parts: show the clients' `name` metric (the run's headline one).
  window.FlautimClients = {
    setMetric: function (name) {
      if (!name || name === view.metric) return;
      view.metric = name;
      view.offset = 0;
      loadTable();
    }
  };
  // The run's headline metric, once the charts know it (experiment.js's "flautim:metrics").
  root.addEventListener("flautim:metrics", function (e) {
    var name = e.detail && e.detail.headline;
    if (typeof name === "string" && name !== "loss") window.FlautimClients.setMetric(name);
  });
  loadSpread();
  loadTable();
  loadMix();
})();
