/* The experiment page: tabs, and live updates over Server-Sent Events.
   Everything is rebuilt from the event stream (catch-up first, then live), so a page opened
   mid-run and a page watching from the start show the same thing. */
(function () {
  "use strict";
  var root = document.getElementById("experiment");
  if (!root) return;
  var Charts = window.FlautimCharts;
  var labels = JSON.parse(root.getAttribute("data-labels") || "{}");
  function L(key, fallback) { return labels[key] || fallback; }
  function $(id) { return document.getElementById(id); }
  var TERMINAL = ["succeeded", "failed", "cancelled", "timed_out"];

  // --- tabs -------------------------------------------------------------------------------
  var tabs = root.querySelectorAll("[data-tab]");
  function showTab(name) {
    tabs.forEach(function (b) {
      var on = b.getAttribute("data-tab") === name;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
      $("tab-" + b.getAttribute("data-tab")).classList.toggle("hidden", !on);
    });
    if (name === "logs" && $("log-follow").checked) scrollLogs();
  }
  tabs.forEach(function (b) {
    b.addEventListener("click", function () {
      showTab(b.getAttribute("data-tab"));
      history.replaceState(null, "", "#" + b.getAttribute("data-tab"));
    });
  });

  // --- run state --------------------------------------------------------------------------
  var state = root.getAttribute("data-state");
  var initialState = state;
  var attempt = Number(root.getAttribute("data-attempt"));
  var roundsTotal = Number(root.getAttribute("data-rounds-total")) || 0;
  var startedAt = root.getAttribute("data-started-at") ? Date.parse(root.getAttribute("data-started-at")) / 1000 : null;
  var finishedAt = root.getAttribute("data-finished-at") ? Date.parse(root.getAttribute("data-finished-at")) / 1000 : null;
  var runFinished = null;
  var roundStart = {}, roundEnd = {};
  var currentRound = 0, completedRounds = 0;
  // Every metric the run reports: series[name] = {train, evaluate, central} point lists,
  // at most MAX_METRICS names (the server's bound on the catch-up's curves too).
  var series = { loss: { train: [], evaluate: [], central: [] } };
  var metricOrder = ["loss"], MAX_METRICS = 24;
  // The run's headline metric (flautim.headline decides it on the server; the state says it).
  var headlineName = null;

  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function pct(v) { return v === null ? "—" : (v * (v <= 1 ? 100 : 1)).toFixed(2) + "%"; }
  // Accuracies read as percentages; other metrics (MSE, MAE, f1) as plain numbers.
  function metricText(name, v) { return v === null || v === undefined ? "—" : /acc/i.test(name || "") ? pct(v) : Charts.format(v); }
  function seriesOf(name) {
    if (!series[name]) {
      if (metricOrder.length >= MAX_METRICS) return null;
      series[name] = { train: [], evaluate: [], central: [] };
      metricOrder.push(name);
      updatePicker();
    }
    return series[name];
  }
  // The loss and every metric of an event's payload, into the curves of `key`.
  function addPoints(key, r, p) {
    var values = { loss: p.loss };
    if (p.metrics && typeof p.metrics === "object") Object.keys(p.metrics).forEach(function (k) { values[k] = p.metrics[k]; });
    Object.keys(values).forEach(function (name) {
      if (num(values[name]) === null) return;
      var s = seriesOf(name);
      if (s) upsert(s[key], r, values[name]);
    });
  }
  function dur(s) {
    if (s === null || s === undefined || !isFinite(s)) return "—";
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + r + " s";
  }
  // Points a curve may hold (the server's CURVE_MAX_POINTS, from the catch-up's summary);
  // past twice as many, every other point but the last is dropped and the page says so.
  var maxPoints = 500, downsampled = false, skippedEvents = 0;
  function upsert(list, round, value) {
    for (var i = list.length - 1; i >= 0; i--) if (list[i][0] === round) { list[i][1] = value; return; }
    list.push([round, value]);
    if (list.length > 2 * maxPoints) {
      list.sort(function (a, b) { return a[0] - b[0]; });
      for (var j = list.length - 2; j >= 0; j -= 2) list.splice(j, 1);  // the last one stays
      downsampled = true;
      showCurvesNote();
    }
  }
  function showCurvesNote() {
    var parts = [];
    if (downsampled) parts.push(L("downsampled", "").replace("{n}", String(maxPoints)));
    if (skippedEvents) parts.push(L("skipped_events", "").replace("{n}", String(skippedEvents)));
    var note = $("curves-note");
    note.textContent = parts.join(" ");
    note.classList.toggle("hidden", !parts.length);
  }
  // What the catch-up left out (a long run): the curves, bounded, and the newest event of
  // each kind the page needs whatever its age (start, partition, error, end).
  function onSummary(s) {
    var c = s.curves || {};
    if (c.max_points) maxPoints = c.max_points;
    if (c.headline && c.headline.name && c.headline.name !== "loss" && !headlineName) headlineName = c.headline.name;
    (c.names || []).forEach(function (name) {
      if (!c.metrics || !c.metrics[name]) return;
      var s = seriesOf(name);
      if (!s) return;
      ["train", "evaluate", "central"].forEach(function (key) {
        var pts = c.metrics[name][key] || [];
        s[key] = pts.slice();
        pts.forEach(function (p) { if (key !== "train") completedRounds = Math.max(completedRounds, p[0]); });
      });
    });
    downsampled = downsampled || !!c.downsampled;
    skippedEvents = s.skipped_events || 0;
    (s.events || []).forEach(onEvent);
    showCurvesNote();
    drawCharts();
  }

  var chartTimer = null;
  function drawCharts() {
    if (chartTimer) return;
    chartTimer = setTimeout(function () {
      chartTimer = null;
      drawChart($("chart-loss"), "loss");
      var picked = pickedMetric();
      // A finished run never shows an empty chart: one with nothing to draw goes, and a run
      // that reported nothing says so. A run that reports no metric but its loss has no
      // second chart at all.
      var finished = caughtUp && TERMINAL.indexOf(state) >= 0;
      var lossEmpty = !hasPoints("loss");
      $("loss-chart").classList.toggle("hidden", finished && lossEmpty);
      $("metric-chart").classList.toggle("hidden", !picked || (finished && !hasPoints(picked)));
      $("no-metrics-note").classList.toggle("hidden", !(finished && lossEmpty && !picked));
      if (picked) {
        $("metric-caption").textContent = L("metric_per_round", "{name} por rodada").replace("{name}", picked);
        drawChart($("chart-metric"), picked);
      }
      updateHeadline();
    }, 50);
  }

  function hasPoints(name) {
    var s = series[name];
    return !!s && (s.train.length + s.evaluate.length + s.central.length) > 0;
  }
  function drawChart(svg, name) {
    var s = series[name] || { train: [], evaluate: [], central: [] };
    Charts.line(svg, [
      { key: "train", label: L("train", "treino"), cls: "s-train", points: s.train },
      { key: "evaluate", label: L("evaluate", "avaliação federada"), cls: "s-evaluate", points: s.evaluate },
      { key: "central", label: L("central", "avaliação central"), cls: "s-central", points: s.central }
    ], { xLabel: L("round", "rodada"), yLabel: name, integerX: true, empty: L("waiting", "aguardando dados") });
    svg.setAttribute("data-metric", name);
  }

  // The metric picker: every metric but the loss (which has its own chart), the headline
  // first; the user's choice stays until they change it.
  var picker = $("metric-picker"), userPicked = null;
  function otherMetrics() {
    var names = metricOrder.filter(function (n) { return n !== "loss"; });
    if (headlineName && names.indexOf(headlineName) > 0) names = [headlineName].concat(names.filter(function (n) { return n !== headlineName; }));
    return names;
  }
  function pickedMetric() {
    var names = otherMetrics();
    if (userPicked && names.indexOf(userPicked) >= 0) return userPicked;
    return names.length ? names[0] : null;
  }
  function updatePicker() {
    var names = otherMetrics(), current = pickedMetric();
    picker.textContent = "";
    names.forEach(function (n) {
      var o = document.createElement("option"); o.value = n; o.textContent = n;
      if (n === current) o.selected = true;
      picker.appendChild(o);
    });
    picker.disabled = names.length < 2;
    // The per-client view (client_curves.js) offers the same metrics, the loss first.
    root.dispatchEvent(new CustomEvent("flautim:metrics", { detail: { names: metricOrder.slice(), headline: headlineName } }));
    // The clients' table (clients.js) shows the headline metric too.
    if (headlineName && window.FlautimClients) window.FlautimClients.setMetric(headlineName);
  }
  picker.addEventListener("change", function () { userPicked = picker.value; drawCharts(); });

  // The run's current and best figures, as the server keeps them (the state's headline).
  var headline = {};
  function updateHeadline() {
    var name = headline.metric || headlineName;
    $("metric-current-label").textContent = name ? L("metric_current", "{name} atual").replace("{name}", name) : L("metric_current_none", "métrica atual");
    $("metric-best-label").textContent = name ? L("metric_best", "melhor {name}").replace("{name}", name) : L("metric_best_none", "melhor métrica");
    $("metric-current").textContent = metricText(name, num(headline.metric_value));
    $("metric-best").textContent = metricText(name, num(headline.metric_best));
    var lc = num(headline.loss), lb = num(headline.best_loss);
    $("loss-current").textContent = lc === null ? "—" : Charts.format(lc);
    $("loss-best").textContent = lb === null ? "—" : Charts.format(lb);
    $("round-current").textContent = String(currentRound || completedRounds);
    $("round-total").textContent = roundsTotal ? String(roundsTotal) : "?";
    var bar = $("progress");
    bar.max = roundsTotal || 1;
    bar.value = Math.min(completedRounds, roundsTotal || completedRounds);
  }

  function tick() {
    var now = Date.now() / 1000;
    var running = TERMINAL.indexOf(state) < 0 && state !== "draft";
    var end = running ? now : (finishedAt || (runFinished && runFinished.ts) || now);
    if (startedAt) $("elapsed").textContent = dur(end - startedAt);
    if (!running) {
      $("remaining").textContent = state === "succeeded" ? dur(0) : "—";
      var total = runFinished && num(runFinished.duration_s);
      if (total === null && startedAt && finishedAt) total = finishedAt - startedAt;
      if (total !== null && total !== undefined) $("total-duration").textContent = dur(total);
      return;
    }
    // Time remaining from measured rounds: the mean round time × the rounds still to run.
    var times = [];
    Object.keys(roundEnd).forEach(function (r) {
      if (roundStart[r] !== undefined && roundEnd[r] > roundStart[r] && Number(r) <= completedRounds) times.push(roundEnd[r] - roundStart[r]);
    });
    if (!times.length || !roundsTotal) { $("remaining").textContent = "—"; return; }
    var mean = times.reduce(function (a, b) { return a + b; }, 0) / times.length;
    var left = (roundsTotal - completedRounds) * mean;
    if (currentRound > completedRounds && roundStart[currentRound]) left -= Math.min(mean, now - roundStart[currentRound]);
    $("remaining").textContent = dur(Math.max(0, left));
  }
  setInterval(tick, 1000);

  function showError(p) {
    $("error-box").classList.remove("hidden");
    // In the page's language when the runtime named the error (run_messages.js).
    var m = window.FlautimRunMessages ? window.FlautimRunMessages.render(p) : p;
    $("error-what").textContent = m.what || "";
    [["where", m.where], ["hint", m.hint], ["traceback", p.traceback]].forEach(function (pair) {
      var row = $("error-" + pair[0] + "-row");
      if (pair[1]) { $("error-" + pair[0]).textContent = (pair[0] === "where" && p.client !== undefined && p.client !== null) ? pair[1] + " (client-" + p.client + ")" : pair[1]; row.classList.remove("hidden"); }
    });
    showHelpLink(p.help);
  }

  // The FAQ entry explaining an error: only a published slug (the page lists their URLs) links.
  function showHelpLink(slug) {
    var urls = JSON.parse($("error-box").getAttribute("data-help-urls") || "{}");
    var url = typeof slug === "string" && Object.prototype.hasOwnProperty.call(urls, slug) ? urls[slug] : null;
    $("error-help-row").classList.toggle("hidden", !url);
    $("error-help").setAttribute("href", url || "#");
  }

  var modelsTimer = null;
  function refreshModels() {
    clearTimeout(modelsTimer);
    modelsTimer = setTimeout(function () {
      fetch(root.getAttribute("data-models-url"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) $("models").innerHTML = html; });
    }, 300);
  }

  function onEvent(e) {
    // The page's other parts (clients.js) follow the run through this DOM event.
    root.dispatchEvent(new CustomEvent("flautim:event", { detail: e }));
    var p = e.payload || {}, r = num(p.round), ts = num(p.ts);
    if (r !== null && ts !== null && e.type !== "round_started") roundEnd[r] = Math.max(roundEnd[r] || 0, ts);
    switch (e.type) {
      case "run_started":
        if (num(p.rounds)) roundsTotal = p.rounds;
        if (!startedAt && ts) startedAt = ts;
        break;
      case "round_started":
        if (r !== null) { roundStart[r] = ts; currentRound = Math.max(currentRound, r); }
        break;
      case "aggregated": {
        var key = p.phase === "train" ? "train" : "evaluate";
        if (r !== null) {
          addPoints(key, r, p);
          if (key === "evaluate") completedRounds = Math.max(completedRounds, r);
        }
        drawCharts();
        break;
      }
      case "central_evaluate":
        if (r !== null) {
          addPoints("central", r, p);
          completedRounds = Math.max(completedRounds, r);
        }
        drawCharts();
        break;
      case "checkpoint": refreshModels(); break;
      case "diagnosis": document.dispatchEvent(new CustomEvent("flautim:diagnosis")); break;
      case "error": showError(p); break;
      case "warning": if (window.FlautimRunMessages) window.FlautimRunMessages.showWarning(p, e.id); break;
      case "run_finished":
        runFinished = p;
        if (num(p.rounds_completed) !== null) completedRounds = Math.max(completedRounds, p.rounds_completed);
        drawCharts();
        break;
    }
  }

  function onState(s) {
    if (s.attempt !== undefined && s.attempt !== null && Number(s.attempt) !== attempt) return;
    state = s.state || state;
    var badge = $("state-badge").querySelector(".badge");
    badge.className = "badge state-" + state;
    badge.setAttribute("data-state", state);
    badge.textContent = L("state_" + state, state);
    if (num(s.rounds_total)) roundsTotal = s.rounds_total;
    if (num(s.rounds_done) !== null) completedRounds = Math.max(completedRounds, s.rounds_done);
    if (s.started_at) startedAt = Date.parse(s.started_at) / 1000;
    if (s.finished_at) finishedAt = Date.parse(s.finished_at) / 1000;
    if (s.failure_reason && $("error-what").textContent === "") showError({ what: s.failure_reason });
    drawCharts();
    if (s.headline) {
      headline = s.headline;
      if (headline.metric && headline.metric !== "loss" && headline.metric !== headlineName) {
        headlineName = headline.metric;
        updatePicker();
        drawCharts();
      }
    }
    updateHeadline();
    tick();
  }

  // --- logs -------------------------------------------------------------------------------
  // The box holds the newest lines of one choice of source: every line (the stream's
  // catch-up, then live), or one source, all the clients or one client, fetched from
  // logs.json when picked (the newest of the whole log, not only of the lines already
  // here), then the live lines of that choice only. A run has up to 10,000 clients: past
  // a few (log_picker.LISTED_CLIENTS), one is picked by its number, checked by the server.
  var logbox = $("logbox"), sourceSelect = $("log-source"), search = $("log-search");
  var clientPick = $("log-client-pick"), clientInput = $("log-client");
  var allClients = $("log-all-clients"), oneClient = $("log-one-client");
  var sourceError = $("log-source-error"), sourceNote = $("log-source-note");
  var MAX_LINES = 5000, LISTED_CLIENTS = 20, logCount = 0, knownSources = {};
  var CLIENT_SOURCE = /^client-(\d+)$/, GROUP_SOURCE = /^clients-(\d+)-(\d+)$/, CLIENT_TAG = /^\[client (\d+) /;
  function attrNumber(name) { var v = sourceSelect.getAttribute(name); return v === null || v === "" ? null : Number(v); }
  var clients = { count: attrNumber("data-clients") || 0, first: attrNumber("data-client-first"), last: attrNumber("data-client-last") };
  var groups = (sourceSelect.getAttribute("data-groups") || "").split(" ").filter(Boolean);
  Array.prototype.forEach.call(sourceSelect.options, function (o) { knownSources[o.value] = true; });
  groups.forEach(function (g) { knownSources[g] = true; });
  // What the box shows: {} every line; {source}, {clients: true} or {client: number}.
  var chosen = {}, loadSeq = 0, loading = false, held = [];
  // The newest id a fetch brought: the stream's catch-up may still be sending older lines.
  var loadedUpTo = 0;

  function scrollLogs() { logbox.scrollTop = logbox.scrollHeight; }
  function visible(div) {
    var q = search.value.toLowerCase();
    return !q || div.textContent.toLowerCase().indexOf(q) >= 0;
  }
  function applyFilter() {
    Array.prototype.forEach.call(logbox.children, function (d) { d.classList.toggle("hidden", !visible(d)); });
  }
  search.addEventListener("input", applyFilter);

  // The client a line is from: its own source's number, or in a group's process the number
  // the client library tags its lines with (-1: the group's untagged lines); null: no client.
  function clientOf(row) {
    var m = CLIENT_SOURCE.exec(row.source);
    if (m) return Number(m[1]);
    if (!GROUP_SOURCE.test(row.source)) return null;
    m = CLIENT_TAG.exec(row.line);
    return m ? Number(m[1]) : -1;
  }
  function wanted(row) {
    if (chosen.source !== undefined) return row.source === chosen.source;
    if (chosen.clients) return clientOf(row) !== null;
    if (chosen.client !== undefined) return clientOf(row) === chosen.client;
    return true;
  }

  function formatCount(n) { return n.toLocaleString(document.documentElement.lang || undefined); }
  function showClients() {
    allClients.textContent = allClients.getAttribute("data-label") + " (" + formatCount(clients.count) + ")";
    [allClients].concat(clients.count > LISTED_CLIENTS || groups.length ? [oneClient] : []).forEach(function (o) {
      o.hidden = o.disabled = clients.count === 0;
    });
    var range = $("log-client-range");
    range.textContent = clients.count ? range.getAttribute("data-template").replace("{n}", formatCount(clients.count))
      .replace("{first}", String(clients.first)).replace("{last}", String(clients.last)) : "";
  }
  // A source first seen live: a new option, or one more client in the count.
  function noteSource(source) {
    if (knownSources[source]) return;
    knownSources[source] = true;
    var m = CLIENT_SOURCE.exec(source), g = GROUP_SOURCE.exec(source);
    if (!m && !g) {
      var o = document.createElement("option"); o.value = source; o.textContent = source;
      sourceSelect.insertBefore(o, allClients);
      return;
    }
    var first = Number(m ? m[1] : g[1]), last = Number(m ? m[1] : g[2]);
    // Past the listed few the page knows the clients' range, not each one: a client inside
    // it was counted already (or is in a group's process).
    var listed = !groups.length && clients.count <= LISTED_CLIENTS;
    if (g) groups.push(source);
    if (!listed && clients.first !== null && first >= clients.first && last <= clients.last) return;
    clients.count += last - first + 1;
    clients.first = clients.first === null ? first : Math.min(clients.first, first);
    clients.last = clients.last === null ? last : Math.max(clients.last, last);
    if (m && listed && !groups.length && clients.count <= LISTED_CLIENTS) {
      var c = document.createElement("option"); c.value = source; c.textContent = source;
      sourceSelect.insertBefore(c, oneClient);
    }
    showClients();
  }
  showClients();

  function showSourceError(message) {
    sourceError.textContent = message || "";
    sourceError.classList.toggle("hidden", !message);
  }
  // Fetch the newest lines of a choice; the box changes only once they are here (a refused
  // choice leaves it as it was). Live lines arriving meanwhile wait, then go through.
  function load(next, params) {
    var mine = ++loadSeq;
    loading = true;
    root.setAttribute("data-log-loading", "true");
    flushLogs();
    var url = sourceSelect.getAttribute("data-url") + (params ? "?" + new URLSearchParams(params).toString() : "");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (mine !== loadSeq) return;
        if (!res.ok) { showSourceError(res.body.error); done([]); return; }
        if (res.body.items.length) loadedUpTo = Math.max(loadedUpTo, res.body.items[res.body.items.length - 1].id);
        showSourceError("");
        chosen = next;
        logbox.textContent = "";
        logCount = 0;
        sourceNote.textContent = res.body.has_more ? L("log_older_lines", "").replace("{n}", String(res.body.items.length)) : "";
        sourceNote.classList.toggle("hidden", !res.body.has_more);
        done(res.body.items);
      })
      .catch(function () { if (mine === loadSeq) { showSourceError(L("log_load_failed", "")); done([]); } });
  }
  function done(items) {
    loading = false;
    root.setAttribute("data-log-loading", "false");
    pendingLines = items.concat(held.filter(function (row) { return row.id > loadedUpTo && wanted(row); }));
    held = [];
    flushLogs();
  }
  function pickClient() {
    var text = clientInput.value.trim();
    if (!text) { showSourceError(L("log_client_missing", "")); clientInput.focus(); return; }
    load({ client: /^\d+$/.test(text) ? Number(text) : NaN }, { client: text });
  }
  sourceSelect.addEventListener("change", function () {
    var v = sourceSelect.value, m = CLIENT_SOURCE.exec(v);
    clientPick.classList.toggle("hidden", v !== "client");
    if (v === "client") { showSourceError(""); clientInput.focus(); return; }
    if (v === "") load({}, null);
    else if (v === "clients") load({ clients: true }, { clients: "all" });
    else if (m) load({ client: Number(m[1]) }, { client: m[1] });
    else load({ source: v }, { source: v });
  });
  $("log-client-show").addEventListener("click", pickClient);
  clientInput.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); pickClient(); } });

  var pendingLines = [], logTimer = null;
  function onLog(row) {
    noteSource(row.source);
    if (loading) { held.push(row); return; }
    if (row.id <= loadedUpTo || !wanted(row)) return;
    pendingLines.push(row);
    if (!logTimer) logTimer = setTimeout(flushLogs, 50);
  }
  function flushLogs() {
    clearTimeout(logTimer);
    logTimer = null;
    var frag = document.createDocumentFragment();
    pendingLines.forEach(function (row) {
      var div = document.createElement("div");
      div.className = "logline src-" + String(row.source).replace(/[^a-z0-9-]/gi, "") + (row.stream === "stderr" ? " stderr" : "");
      div.setAttribute("data-source", row.source);
      div.setAttribute("data-id", row.id);
      var tag = document.createElement("span"); tag.className = "src"; tag.textContent = "[" + row.source + "] ";
      div.appendChild(tag);
      div.appendChild(document.createTextNode(row.line));
      if (!visible(div)) div.classList.add("hidden");
      frag.appendChild(div);
      logCount++;
    });
    pendingLines = [];
    logbox.appendChild(frag);
    while (logbox.children.length > MAX_LINES) logbox.removeChild(logbox.firstChild);
    $("log-count").textContent = logCount + " " + L("lines", "linhas");
    if ($("log-follow").checked) scrollLogs();
  }

  // --- the stream -------------------------------------------------------------------------
  var status = $("live-status");
  // The Modelos table is fetched, not rendered with the page: once the catch-up is done
  // (its checkpoint events would ask for it anyway), then on each new checkpoint.
  var caughtUp = false;
  function connect() {
    if (!window.EventSource) { refreshModels(); return; }
    var es = new EventSource(root.getAttribute("data-stream-url"));
    root.setAttribute("data-live", "connecting");
    es.addEventListener("open", function () { root.setAttribute("data-live", "open"); status.textContent = ""; });
    es.addEventListener("summary", function (m) { onSummary(JSON.parse(m.data)); });
    es.addEventListener("event", function (m) { onEvent(JSON.parse(m.data)); });
    es.addEventListener("log", function (m) { onLog(JSON.parse(m.data)); });
    es.addEventListener("state", function (m) {
      if (!caughtUp) { caughtUp = true; refreshModels(); }
      onState(JSON.parse(m.data));
    });
    es.addEventListener("end", function (m) {
      es.close();
      root.setAttribute("data-live", "ended");
      var d = JSON.parse(m.data);
      if (d.revoked) { status.textContent = L("revoked", "acesso encerrado"); return; }
      refreshModels();
      // A run that ended while we watched (or a new attempt): reload for the right buttons.
      if (d.reload || (TERMINAL.indexOf(initialState) < 0 && TERMINAL.indexOf(d.state) >= 0 && initialState !== "draft")) {
        setTimeout(function () { location.reload(); }, 1500);
      }
    });
    es.addEventListener("error", function () {
      if (!caughtUp) { caughtUp = true; refreshModels(); }  // no stream: still show the models
      // Closed for good: refused (too many open streams: 429) or no longer allowed (404).
      if (es.readyState === EventSource.CLOSED) { root.setAttribute("data-live", "closed"); status.textContent = L("closed", "atualização ao vivo encerrada"); return; }
      root.setAttribute("data-live", "reconnecting");
      status.textContent = L("reconnecting", "reconectando…");
    });
  }
  drawCharts();
  tick();
  // Reopen the tab named in the address (after a reload), once everything above exists.
  if (["#logs", "#models", "#outputs"].indexOf(location.hash) >= 0) showTab(location.hash.slice(1));
  connect();
})();
