/* Saídas: "Comparar com treino centralizado" and the overlay of the experiment's curves with
   its centralized baseline's (experiments/_baseline.html). Everything comes from
   baseline.json, fetched here: the page itself makes no query for it. */
(function () {
  "use strict";
  var box = document.getElementById("baseline");
  if (!box || !window.FlautimCharts) return;
  function $(id) { return document.getElementById(id); }
  function label(name) { return box.getAttribute("data-label-" + name) || name; }
  var button = $("baseline-start"), timer = null;
  var ACTIVE = { queued: true, preparing: true, running: true };

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function showError(message) {
    var el = $("baseline-error");
    el.textContent = message || "";
    el.classList.toggle("hidden", !message);
  }

  // The loss, and the experiment's headline metric (body.metric) when it is another one.
  function draw(svg, metric, curves) {
    var c = metric ? curves[metric] : null;
    svg.closest("figure").classList.toggle("hidden", !c);
    if (!c) return;
    svg.setAttribute("data-metric", metric);
    FlautimCharts.line(svg, [
      { key: "federated", label: label("federated"), cls: "s-federated", points: c.federated },
      { key: "centralized", label: label("centralized"), cls: "s-centralized", points: c.centralized }
    ], { xLabel: label("round"), integerX: true, yMin: /acc/i.test(metric) ? 0 : undefined });
  }

  function render(body) {
    if (!body) return;
    var b = body.baseline;
    button.classList.toggle("hidden", !body.can_start);
    button.textContent = b ? label("rerun") : label("start");
    $("baseline-status").classList.toggle("hidden", !b);
    $("baseline-overlay").classList.toggle("hidden", !b);
    if (!b) return;
    $("baseline-link").textContent = b.name;
    $("baseline-link").setAttribute("href", b.url);
    $("baseline-state").textContent = "(" + (b.state_label || b.state) + ")";
    $("baseline-state").setAttribute("data-state", b.state);
    $("baseline-series").textContent = body.series ? "· " + label("series-" + body.series) : "";
    $("baseline-gap").textContent = body.gap_text || (b.state === "succeeded" ? "" : label("waiting"));
    draw($("baseline-chart-loss"), "loss", body.curves || {});
    var other = body.metric && body.metric !== "loss" ? body.metric : null;
    $("baseline-metric-caption").textContent = other ? label("metric").replace("{name}", other) : "";
    draw($("baseline-chart-metric"), other, body.curves || {});
    if (ACTIVE[b.state]) schedule(5000);
  }

  function load() {
    fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(render)
      .catch(function () { schedule(15000); });
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(load, ms);
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    showError("");
    fetch(box.getAttribute("data-start-url"), {
      method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() }
    })
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (pair) {
        button.disabled = false;
        if (pair[0] === 202) { render(pair[1]); return; }
        var e = pair[1] && pair[1].error;
        showError(e ? e.message + (e.hint ? " " + e.hint : "") : String(pair[0]));
        load();
      })
      .catch(function () { button.disabled = false; });
  });

  // A queued or running experiment has nothing to compare yet: look when its badge says it
  // ended (the live stream updates it).
  var badge = document.querySelector("#state-badge .badge");
  if (badge && window.MutationObserver) {
    new MutationObserver(function () {
      if (!ACTIVE[badge.getAttribute("data-state")]) load();
    }).observe(badge, { attributes: true, attributeFilter: ["data-state"] });
  }
  var root = document.getElementById("experiment");
  if (!root || !ACTIVE[root.getAttribute("data-state")]) load();
})();
