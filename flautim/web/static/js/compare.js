/* The comparison page: overlays the chosen experiments' loss and any metric they report
   (the picker; the first run's headline metric first). */
(function () {
  "use strict";
  var root = document.getElementById("compare");
  if (!root || !window.FlautimCharts) return;
  var urls = root.getAttribute("data-curves").split(" ").filter(Boolean);
  var names = JSON.parse(root.getAttribute("data-metrics") || "[]");
  var picker = document.getElementById("compare-picker");
  Promise.all(urls.map(function (u) {
    return fetch(u, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) { return r.json(); });
  })).then(function (all) {
    // The central evaluation is the held-out truth; fall back to the federated one, then training.
    function pick(c, name) {
      var s = (c.metrics || {})[name];
      if (!s) return [];
      return s.central.length ? s.central : s.evaluate.length ? s.evaluate : s.train;
    }
    function series(name) {
      return all.map(function (c, i) { return { key: "exp-" + c.id, label: c.name, cls: "c" + (i % 8), points: pick(c, name) }; });
    }
    function draw(svg, name) {
      window.FlautimCharts.line(svg, series(name), { xLabel: "rodada", yLabel: name, integerX: true });
      svg.setAttribute("data-metric", name);
    }
    draw(document.getElementById("compare-loss"), "loss");
    var others = names.filter(function (n) { return n !== "loss"; });
    document.getElementById("compare-metric-card").classList.toggle("hidden", !others.length);
    others.forEach(function (n) { var o = document.createElement("option"); o.value = n; o.textContent = n; picker.appendChild(o); });
    if (others.length) draw(document.getElementById("compare-metric"), others[0]);
    picker.addEventListener("change", function () { draw(document.getElementById("compare-metric"), picker.value); });
    var legend = document.getElementById("compare-legend");
    all.forEach(function (c, i) {
      var sw = document.createElement("span"); sw.className = "swatch c" + (i % 8);
      legend.appendChild(sw); legend.appendChild(document.createTextNode(c.name + "  "));
    });
  });
})();
