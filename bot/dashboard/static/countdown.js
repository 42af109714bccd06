// Ticks every countdown on the page. Times are measured against the server's clock (the
// page's data-now), so a wrong clock on the viewer's device does not change them.
"use strict";
(function () {
  var serverNow = Date.parse(document.body.getAttribute("data-now") || "");
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-due]"));
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function tick() {
    var now = Date.now() + offset;
    items.forEach(function (item) {
      var due = Date.parse(item.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var seconds = Math.round((due - now) / 1000);
      var sign = seconds < 0 ? "-" : "";
      seconds = Math.abs(seconds);
      var hours = Math.floor(seconds / 3600);
      var rest = seconds % 3600;
      item.textContent = sign + hours + ":" + pad(Math.floor(rest / 60)) + ":" + pad(rest % 60);
      item.classList.toggle("overdue", sign === "-");
    });
  }
  if (items.length) { tick(); window.setInterval(tick, 1000); }
})();
