/* Saídas' per-client view, on demand: the spread of a metric across the clients per round
   (min–max band and median) and the curves of up to 8 chosen clients, from
   client-curves.json (computed by the database, bounded). The metric list follows the run's
   curves (experiment.js announces them with a "flautim:metrics" event). */
(function () {
  "use strict";
  var root = document.getElementById("experiment"), box = document.getElementById("client-curves");
  if (!root || !box || !window.FlautimCharts) return;
  var Charts = window.FlautimCharts;
  var labels = JSON.parse(root.getAttribute("data-labels") || "{}");
  function L(key, fallback) { return labels[key] || fallback; }
  function $(id) { return document.getElementById(id); }
  var metric = $("client-metric"), phase = $("client-phase"), ids = $("client-ids"), note = $("client-note");
  var shown = false;

  root.addEventListener("flautim:metrics", function (e) {
    var names = (e.detail && e.detail.names) || [], current = metric.value;
    if (names.length === metric.options.length) return;
    metric.textContent = "";
    names.forEach(function (n) {
      var o = document.createElement("option"); o.value = n; o.textContent = n;
      if (n === current) o.selected = true;
      metric.appendChild(o);
    });
  });

  function say(text) { note.textContent = text || ""; note.classList.toggle("hidden", !text); }

  function show() {
    var params = new URLSearchParams({ name: metric.value || "loss", phase: phase.value });
    var wanted = ids.value.replace(/\s+/g, "");
    if (wanted) params.set("clients", wanted);
    fetch(box.getAttribute("data-url") + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { say(res.body.error || ""); return; }
        draw(res.body);
      })
      .catch(function () { say(L("client_failed", "não foi possível carregar")); });
  }

  function draw(d) {
    shown = true;
    var spread = d.spread || [];
    if (!spread.length) {
      // Nothing to draw is said in words: never an empty chart.
      $("client-chart").classList.add("hidden");
      $("client-legend").classList.add("hidden");
      say(L("client_no_data", "nenhum cliente relatou {name} nesta fase").replace("{name}", d.name));
      return;
    }
    say(d.downsampled ? L("downsampled", "").replace("{n}", String(d.max_points)) : "");
    var series = [
      { key: "spread", label: L("client_spread", "mín.–máx. dos clientes"), cls: "s-band", points: [],
        band: spread.map(function (p) { return [p.round, p.min, p.max]; }) },
      { key: "median", label: L("client_median", "mediana dos clientes"), cls: "s-median",
        points: spread.map(function (p) { return [p.round, p.median]; }) }
    ];
    (d.clients || []).forEach(function (c, i) {
      series.push({ key: "client-" + c.client, label: "client-" + c.client, cls: "c" + (i % 8),
                    points: c.rounds.map(function (r, j) { return [r, c.values[j]]; }) });
    });
    $("client-chart").classList.remove("hidden");
    $("client-caption").textContent = L("client_caption", "{name} por cliente").replace("{name}", d.name) + " · " + (d.phase === "train" ? L("train", "treino") : L("evaluate", "avaliação"));
    Charts.line($("chart-clients"), series, { xLabel: L("round", "rodada"), yLabel: d.name, integerX: true });
    var legend = $("client-legend");
    legend.textContent = "";
    series.forEach(function (s) {
      var sw = document.createElement("span"); sw.className = "swatch " + s.cls;
      legend.appendChild(sw); legend.appendChild(document.createTextNode(s.label + "  "));
    });
    legend.classList.remove("hidden");
  }

  $("client-show").addEventListener("click", show);
  ids.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); show(); } });
  [metric, phase].forEach(function (el) { el.addEventListener("change", function () { if (shown) show(); }); });
})();
