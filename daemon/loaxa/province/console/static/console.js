// The console's own script: htmx settings (no inline script is allowed by the pages' CSP)
// and the CSRF token sent with every htmx request that changes something.
(function () {
  "use strict";
  if (window.htmx) {
    htmx.config.includeIndicatorStyles = false; // an injected <style> is refused by the CSP; console.css has them
    htmx.config.allowEval = false; // no eval under the CSP (no hx-on, no js: values)
    htmx.config.allowScriptTags = false;
    htmx.config.selfRequestsOnly = true;
  }
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && event.detail.verb !== "get") {
      event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
    }
  });
})();
