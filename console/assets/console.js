// okta-adapter console: the little the pages need beyond htmx. No inline script anywhere
// (the CSP forbids it); this file is loaded from the console's own assets.
(function () {
  "use strict";
  // After htmx swaps in a result, move keyboard and screen-reader focus to it.
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (target && target.hasAttribute && target.hasAttribute("data-focus-after-swap")) {
      target.focus();
    }
  });
})();
