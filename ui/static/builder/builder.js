// The flow builder's shell: what the server-rendered builder cannot do alone.
// - Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) press Undo / Redo when the focus is not in a text field.
// - Every post to the builder carries the draft's revision (an edit from a stale tab is
//   refused by the parts that take it).
// - The selection on the canvas and in the list follows the side panel's step.
// - Leaving the builder with unsaved changes asks first (moving inside it does not).
// No inline handlers (the content security policy forbids them); wired by data attributes.
(function () {
  "use strict";

  var root = document.getElementById("builder");
  if (!root) return;
  var buildUrl = root.getAttribute("data-build-url");
  var inside = false;

  function toolbar() { return document.getElementById("builder-toolbar"); }

  function isTextField(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
    if (isTextField(document.activeElement)) return;
    var key = event.key.toLowerCase();
    var which = null;
    if (key === "z" && !event.shiftKey) which = "[data-builder-undo]";
    else if ((key === "z" && event.shiftKey) || key === "y") which = "[data-builder-redo]";
    if (!which) return;
    var button = document.querySelector(which);
    if (button && !button.disabled) {
      event.preventDefault();
      // A button swapped in by the last edit may not be wired by htmx yet (it settles
      // ~20 ms later): wire it now, so that a quick second Ctrl+Z is not lost.
      if (window.htmx) window.htmx.process(button);
      button.click();
    }
  });

  document.body.addEventListener("htmx:configRequest", function (event) {
    var path = event.detail.path || "";
    if (event.detail.verb !== "post" || path.indexOf(buildUrl) !== 0) return;
    var bar = toolbar();
    if (bar && event.detail.parameters.revision === undefined) {
      event.detail.parameters.revision = bar.getAttribute("data-revision");
    }
    // What the page draws now: the server leaves the canvas out of its answer when the
    // edit did not change it (typing in a field).
    var canvas = document.getElementById("builder-canvas-region");
    var list = document.getElementById("builder-list-region");
    var region = canvas || list;
    var view = canvas ? "canvas" : list ? "list" : "yaml";
    event.detail.headers["X-Builder-Shown"] =
      view + ":" + ((region && region.getAttribute("data-signature")) || "");
  });

  // The selected step: the side panel says which (data-selected-step), the canvas and the
  // list mark it.
  function markSelected() {
    var panel = document.getElementById("builder-panel");
    var marked = panel && panel.querySelector("[data-selected-step]");
    var selected = marked ? marked.getAttribute("data-selected-step") : "";
    root.setAttribute("data-selected", selected);
    document.querySelectorAll("#builder-views [data-step]").forEach(function (el) {
      var on = selected !== "" && el.getAttribute("data-step") === selected;
      el.classList.toggle("selected", on);
      if (el.tagName.toLowerCase() === "a") {
        if (on) el.setAttribute("aria-current", "true");
        else el.removeAttribute("aria-current");
      }
    });
  }
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (target && target.id === "builder-panel") {
      markSelected();
      target.scrollTop = 0; // a new panel starts at its heading
      target.focus({ preventScroll: true });
    } else if (target && /builder-(canvas|list)-region|builder-panel/.test(target.id || "")) {
      markSelected();
    }
  });
  document.body.addEventListener("htmx:oobAfterSwap", markSelected);

  // Leaving with unsaved changes: the browser asks (a move inside the builder does not).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (!link) return;
    var url = new URL(link.href, window.location.href);
    inside = url.origin === window.location.origin && url.pathname.indexOf(buildUrl) === 0;
  }, true);
  // Every deferred script has run by DOMContentLoaded: the builder is wired (bench/builder.py
  // reads this stamp).
  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.setAttribute("data-builder-ready", String(performance.now()));
  });

  window.addEventListener("beforeunload", function (event) {
    var bar = toolbar();
    if (inside || !bar || bar.getAttribute("data-dirty") !== "true") return;
    event.preventDefault();
    event.returnValue = "";
  });
})();
