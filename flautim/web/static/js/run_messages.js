/* A run's errors and warnings in the page's language. The server gives each code's texts
   (FlautimRunMessagesCatalog, a script of its own per language: web/experiments/run_messages.py);
   an event brings the code and its params.
   Events come from user code's sandbox: an unknown code or params that do not fit show the
   event's English text instead, cut to a bounded length, always written as text. */
(function () {
  "use strict";
  var catalog = window.FlautimRunMessagesCatalog || {};
  var MAX_PARAMS = 32, MAX_PARAM_CHARS = 500, MAX_TEXT_CHARS = 2000, MAX_WHERE_CHARS = 300, MAX_WARNINGS = 50;
  var NAME = /^[a-z_][a-z0-9_]{0,39}$/;
  var CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;

  function cut(value, limit) {
    if (value === null || value === undefined) return "";
    var text = String(value).replace(CONTROL, "");
    return text.length <= limit ? text : text.slice(0, limit - 1) + "…";
  }
  function scalar(v) { return v === null || ["string", "number", "boolean"].indexOf(typeof v) >= 0; }
  function scalarText(v) {
    if (v === null) return "None";
    if (typeof v === "boolean") return v ? "True" : "False";
    return cut(v, MAX_PARAM_CHARS);
  }
  // The params as short texts by name; null when they are not what a template can take.
  function cleanParams(params) {
    if (params === undefined || params === null) return {};
    if (typeof params !== "object" || Array.isArray(params)) return null;
    var names = Object.keys(params), clean = {};
    if (names.length > MAX_PARAMS) return null;
    for (var i = 0; i < names.length; i++) {
      var name = names[i], v = params[name], text;
      if (!NAME.test(name)) return null;
      if (Array.isArray(v)) {
        if (v.length > 16 || !v.every(scalar)) return null;
        text = "[" + v.map(scalarText).join(", ") + "]";
      } else if (scalar(v)) {
        text = scalarText(v);
      } else {
        return null;
      }
      clean[name] = cut(text, MAX_PARAM_CHARS);
    }
    return clean;
  }
  // Each %(name)s replaced once by its param; null when a name has no param.
  function fill(template, params) {
    var missing = false;
    var text = String(template).replace(/%\((\w+)\)s|%%/g, function (match, name) {
      if (name === undefined) return "%";
      if (!Object.prototype.hasOwnProperty.call(params, name)) { missing = true; return ""; }
      return params[name];
    });
    return missing ? null : text;
  }

  // {what, where, hint, helpUrl, client, translated} of an error or warning payload.
  function render(p) {
    p = p || {};
    var entry = typeof p.code === "string" && Object.prototype.hasOwnProperty.call(catalog, p.code) ? catalog[p.code] : null;
    var params = cleanParams(p.params), what = null, hint = "";
    if (entry && params) {
      what = fill(entry.what, params);
      for (var i = 0; i < (entry.hints || []).length && what !== null; i++) {
        var h = fill(entry.hints[i], params);
        if (h !== null) { hint = h; break; }
      }
    }
    var translated = what !== null;
    if (!translated) {
      what = cut(p.what !== undefined ? p.what : p.message, MAX_TEXT_CHARS);
      hint = cut(p.hint, MAX_TEXT_CHARS);
    }
    var client = typeof p.client === "number" && isFinite(p.client) ? p.client : null;
    return {
      what: what, where: cut(p.where, MAX_WHERE_CHARS), hint: hint, client: client, translated: translated,
      helpUrl: translated && entry.help_url ? entry.help_url : null
    };
  }

  var shown = 0, more = 0, seen = {};
  function showWarning(p, id) {
    var box = document.getElementById("run-warnings");
    if (!box || (id !== undefined && seen[id])) return;
    var entry = typeof p.code === "string" && Object.prototype.hasOwnProperty.call(catalog, p.code) ? catalog[p.code] : null;
    if (entry && entry.as_diagnosis) return;  // its banner (diagnoses.js) says it
    if (id !== undefined) seen[id] = true;
    if (shown >= MAX_WARNINGS) {
      more++;
      var note = document.getElementById("run-warnings-more");
      note.textContent = (box.getAttribute("data-more") || "").replace("{n}", String(more));
      note.classList.remove("hidden");
      return;
    }
    var m = render(p), li = document.createElement("li");
    li.setAttribute("data-code", m.translated ? p.code : "");
    var text = m.what;
    if (m.where && m.what.indexOf(m.where) !== 0) text = m.where + ": " + text;
    if (m.hint) text += " — " + m.hint;
    li.appendChild(document.createTextNode(text + " "));
    if (m.helpUrl) {
      var a = document.createElement("a");
      a.href = m.helpUrl;
      a.textContent = box.getAttribute("data-help") || "?";
      li.appendChild(a);
    }
    document.getElementById("run-warnings-list").appendChild(li);
    box.classList.remove("hidden");
    shown++;
  }

  window.FlautimRunMessages = { render: render, showWarning: showWarning };
})();
