// The watch grid, live: rows, commune headers and counts replaced as the server sends them (no inline script: CSP).
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  if (!grid || !window.EventSource) return;
  var badge = document.getElementById("live");
  var source = new EventSource(grid.getAttribute("data-live"));

  function swap(html) {
    var box = document.createElement("template");
    box.innerHTML = html;
    Array.prototype.slice.call(box.content.children).forEach(function (fresh) {
      var old = fresh.id && document.getElementById(fresh.id);
      if (old) old.replaceWith(fresh);
    });
  }

  function tidy() {  // a commune with nothing left to show under the filter is folded away
    Array.prototype.forEach.call(grid.tBodies, function (body) {
      body.hidden = !body.querySelector("tr.st:not([hidden])");
    });
  }

  function mark(on) {
    if (!badge) return;
    badge.textContent = badge.getAttribute(on ? "data-on" : "data-off");
    badge.className = on ? "live on" : "live off";
  }

  source.addEventListener("open", function () { mark(true); });
  source.addEventListener("error", function () { mark(false); });
  source.addEventListener("cells", function (e) { swap(e.data); tidy(); });
  source.addEventListener("counts", function (e) { swap(e.data); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
