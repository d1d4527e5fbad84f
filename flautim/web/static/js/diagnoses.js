// Saídas' diagnosis banners: the server renders them (in the reader's language); the page
// fetches them when it opens and again when the live stream brings a new diagnosis
// (experiment.js dispatches "flautim:diagnosis").
(function () {
  "use strict";
  var box = document.getElementById("diagnoses");
  if (!box) return;
  var timer = null;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      fetch(box.getAttribute("data-url"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) box.innerHTML = html; })
        .catch(function () { /* the next diagnosis or visit tries again */ });
    }, 200);
  }
  document.addEventListener("flautim:diagnosis", refresh);
  refresh();
})();
