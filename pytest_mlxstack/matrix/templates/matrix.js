"use strict";
// One evidence panel at a time; Escape or a click beside the panel closes it. Without this
// script the page still works: each <details> opens and closes on its own.
(function () {
  var panels = Array.prototype.slice.call(document.querySelectorAll("details.evidence"));
  function closeAll(except) {
    panels.forEach(function (panel) {
      if (panel !== except && panel.open) { panel.open = false; }
    });
  }
  panels.forEach(function (panel) {
    panel.addEventListener("toggle", function () {
      if (panel.open) { closeAll(panel); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeAll(null); }
  });
  document.addEventListener("click", function (event) {
    var open = panels.filter(function (panel) { return panel.open; });
    open.forEach(function (panel) {
      if (!panel.contains(event.target)) { panel.open = false; }
    });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
