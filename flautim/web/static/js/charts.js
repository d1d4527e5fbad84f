/* Hand-written SVG line charts (no library, no CDN): axes, ticks, one polyline per series.
   FlautimCharts.line(svg, [{label, cls, points: [[x, y], ...]}], {xLabel, yLabel})
   A series with `band: [[x, low, high], ...]` is drawn as a shaded area (a spread). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 560, H = 300, M = { top: 14, right: 16, bottom: 38, left: 58 };

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceTicks(min, max, count) {
    if (min === max) { min -= 1; max += 1; }
    var span = max - min, step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = (count * step) / span;
    if (err <= 0.15) step *= 10; else if (err <= 0.35) step *= 5; else if (err <= 0.75) step *= 2;
    var ticks = [], start = Math.ceil(min / step) * step;
    for (var v = start; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function fmt(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(1);
    return String(Number(v.toFixed(a < 1 ? 3 : 2)));
  }

  function line(svg, series, opts) {
    opts = opts || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    var pts = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) { pts.push(p); });
      (s.band || []).forEach(function (b) { pts.push([b[0], b[1]]); pts.push([b[0], b[2]]); });
    });
    svg.setAttribute("data-points", String(pts.length));
    if (!pts.length) {
      var t = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "class": "chart-empty" }, svg);
      t.textContent = opts.empty || "—";
      return;
    }
    var xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
    var xMin = Math.min.apply(null, xs), xMax = Math.max.apply(null, xs);
    var yMin = opts.yMin !== undefined ? Math.min(opts.yMin, Math.min.apply(null, ys)) : Math.min.apply(null, ys);
    var yMax = opts.yMax !== undefined ? Math.max(opts.yMax, Math.max.apply(null, ys)) : Math.max.apply(null, ys);
    if (xMin === xMax) { xMin -= 1; xMax += 1; }
    if (yMin === yMax) { yMin -= Math.abs(yMin) * 0.1 || 1; yMax += Math.abs(yMax) * 0.1 || 1; }
    var pad = (yMax - yMin) * 0.05; yMin -= pad; yMax += pad;
    var iw = W - M.left - M.right, ih = H - M.top - M.bottom;
    function X(v) { return M.left + ((v - xMin) / (xMax - xMin)) * iw; }
    function Y(v) { return M.top + ih - ((v - yMin) / (yMax - yMin)) * ih; }

    var axes = el("g", { "class": "axes" }, svg);
    niceTicks(yMin, yMax, 5).forEach(function (v) {
      if (v < yMin || v > yMax) return;
      el("line", { x1: M.left, x2: W - M.right, y1: Y(v), y2: Y(v), "class": "grid" }, axes);
      var t = el("text", { x: M.left - 6, y: Y(v) + 4, "text-anchor": "end" }, axes);
      t.textContent = fmt(v);
    });
    var xt = niceTicks(xMin, xMax, Math.min(8, Math.max(1, xMax - xMin)));
    xt.forEach(function (v) {
      if (v < xMin || v > xMax || (opts.integerX && v !== Math.round(v))) return;
      el("line", { x1: X(v), x2: X(v), y1: M.top + ih, y2: M.top + ih + 4, "class": "tick" }, axes);
      var t = el("text", { x: X(v), y: M.top + ih + 16, "text-anchor": "middle" }, axes);
      t.textContent = fmt(v);
    });
    el("line", { x1: M.left, x2: W - M.right, y1: M.top + ih, y2: M.top + ih, "class": "axis" }, axes);
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + ih, "class": "axis" }, axes);
    if (opts.xLabel) { var xl = el("text", { x: M.left + iw / 2, y: H - 4, "text-anchor": "middle", "class": "label" }, axes); xl.textContent = opts.xLabel; }
    if (opts.yLabel) { var yl = el("text", { x: 12, y: M.top + ih / 2, "text-anchor": "middle", "class": "label", transform: "rotate(-90 12 " + (M.top + ih / 2) + ")" }, axes); yl.textContent = opts.yLabel; }

    series.forEach(function (s) {
      if (!s.band || !s.band.length) return;
      var band = s.band.slice().sort(function (a, b) { return a[0] - b[0]; });
      var upper = band.map(function (b) { return X(b[0]) + "," + Y(b[2]); });
      var lower = band.slice().reverse().map(function (b) { return X(b[0]) + "," + Y(b[1]); });
      var g = el("g", { "class": "band " + (s.cls || ""), "data-series": s.key || s.label }, svg);
      var area = el("polygon", { points: upper.concat(lower).join(" ") }, g);
      var title = el("title", {}, area);
      title.textContent = s.label;
    });
    series.forEach(function (s) {
      if (!s.points.length) return;
      var sorted = s.points.slice().sort(function (a, b) { return a[0] - b[0]; });
      var g = el("g", { "class": "series " + (s.cls || ""), "data-series": s.key || s.label }, svg);
      el("polyline", { points: sorted.map(function (p) { return X(p[0]) + "," + Y(p[1]); }).join(" "), fill: "none" }, g);
      sorted.forEach(function (p) {
        var c = el("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3 }, g);
        var title = el("title", {}, c);
        title.textContent = s.label + " · " + fmt(p[0]) + ": " + fmt(p[1]);
      });
    });
  }

  window.FlautimCharts = { line: line, format: fmt };
})();
