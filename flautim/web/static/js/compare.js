/* The comparison page: overlays the curves of the chosen experiments. */
(function () {
  "use strict";
  var root = document.getElementById("compare");
  if (!root || !window.FlautimCharts) return;
  var urls = root.getAttribute("data-curves").split(" ").filter(Boolean);
  Promise.all(urls.map(function (u) {
    return fetch(u, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) { return r.json(); });
  })).then(function (all) {
    function pick(c, metric) {
      var s = c[metric];
      return s.central.length ? s.central : s.evaluate.length ? s.evaluate : s.train;
    }
    function series(metric) {
      return all.map(function (c, i) { return { key: "exp-" + c.id, label: c.name, cls: "c" + (i % 8), points: pick(c, metric) }; });
    }
    window.FlautimCharts.line(document.getElementById("compare-loss"), series("loss"), { xLabel: "rodada", yLabel: "loss", integerX: true });
    window.FlautimCharts.line(document.getElementById("compare-accuracy"), series("accuracy"), { xLabel: "rodada", yLabel: "acurácia", integerX: true });
    var legend = document.getElementById("compare-legend");
    all.forEach(function (c, i) {
      var sw = document.createElement("span"); sw.className = "swatch c" + (i % 8);
      legend.appendChild(sw); legend.appendChild(document.createTextNode(c.name + "  "));
    });
  });
})();
