// The builder's catalog, trigger and flow panels.
// - Their edits (POST {build}/steps, /trigger, /flow) carry the draft's revision, as the
//   shell's /edit does: an edit from a stale tab is refused.
// - The trigger panel: after an out-of-band answer to a change of the trigger's
// config, place the server's errors under their fields (the form itself is not swapped, so
// the field being typed in keeps its focus). The answer carries them in the hidden
// #trigger-live-errors: one [data-error-for=<control id>] per field with errors.
(function () {
  "use strict";

  function describedBy(el, id, on) {
    var ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) {
      return x && x !== id;
    });
    if (on) ids.push(id);
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  }

  function place() {
    var live = document.getElementById("trigger-live-errors");
    var fields = document.getElementById("trigger-config-fields");
    if (!live || !fields || live.hasAttribute("data-placed")) return;
    live.setAttribute("data-placed", "");
    fields.querySelectorAll(".field-error").forEach(function (old) {
      var owner = old.id ? fields.querySelector("[aria-describedby~='" + old.id + "']") : null;
      if (owner) {
        describedBy(owner, old.id, false);
        owner.removeAttribute("aria-invalid");
      }
      old.remove();
    });
    live.querySelectorAll("[data-error-for]").forEach(function (entry) {
      var control = document.getElementById(entry.getAttribute("data-error-for"));
      if (!control || !fields.contains(control)) return;
      var box = document.createElement("div");
      box.className = "field-error";
      box.id = entry.getAttribute("data-error-id");
      Array.prototype.forEach.call(entry.childNodes, function (node) {
        box.appendChild(node.cloneNode(true));
      });
      var holder = control.tagName === "FIELDSET" ? control : control.closest(".field") || control.parentNode;
      holder.appendChild(box);
      describedBy(control, box.id, true);
      if (control.tagName !== "FIELDSET") control.setAttribute("aria-invalid", "true");
    });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var root = document.getElementById("builder");
    var bar = document.getElementById("builder-toolbar");
    if (!root || !bar || event.detail.verb !== "post") return;
    var path = event.detail.path || "";
    var base = root.getAttribute("data-build-url");
    if (path !== base + "/steps" && path !== base + "/trigger" && path !== base + "/flow") return;
    if (event.detail.parameters.revision === undefined) {
      event.detail.parameters.revision = bar.getAttribute("data-revision");
    }
  });

  document.addEventListener("htmx:oobAfterSwap", place);
  document.addEventListener("htmx:afterSettle", place);
})();
