/* Buttons with data-confirm ask before submitting their form (no inline handlers: CSP). */
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) ev.preventDefault();
  });
})();
