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
  // A page that answers a form (its problems, a new fieldset, a plan) says where focus goes.
  document.addEventListener("DOMContentLoaded", function () {
    var first = document.querySelector("[data-focus-on-load]");
    if (first) {
      first.focus();
    }
  });
  // Copy buttons: <button data-copy="ID" data-copy-status="ID"> copies the text of #ID and
  // says in #status whether it worked.
  document.addEventListener("click", function (e) {
    var button = e.target && e.target.closest ? e.target.closest("[data-copy]") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-copy-status") || "");
    var say = function (words) {
      if (status) {
        status.textContent = words;
      }
    };
    if (!source) {
      return;
    }
    if (!navigator.clipboard || !navigator.clipboard.writeText) {
      say("This browser cannot copy here: select the text below and copy it.");
      return;
    }
    navigator.clipboard.writeText(source.textContent).then(
      function () { say("Copied to the clipboard."); },
      function () { say("Not copied (the browser refused): select the text below and copy it."); }
    );
  });
})();
