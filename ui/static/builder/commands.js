// The flow builder's graph commands from the keyboard (hub/web/builder/command_pages.py):
// - on a step of the canvas: Delete (asks first), d duplicate, a add after, b add on a new
//   branch, r rename (focuses the step panel's id field), c connect from (its select);
// - after a command started on the canvas, the focus comes back to the selected step there;
// - the step commands' fields (inside the step panel's form) keep their events to
//   themselves, and Enter in one presses its own button;
// - the list view's move buttons keep the focus on the moved step's button;
// - every post to the builder carries the canvas's direction (LR or TB);
// - the "Keys" button shows the canvas's keyboard help.
// No inline handlers (strict CSP); wired by data attributes, delegated (regions are swapped).
(function () {
  "use strict";

  var root = document.getElementById("builder");
  if (!root || !window.htmx) return;
  var buildUrl = root.getAttribute("data-build-url");
  var pending = null; // { step, focus } after a canvas command or r/c
  var moved = null; // { step, offset } after a list move

  function panel() { return document.getElementById("builder-panel"); }

  function stepUrl(step, tail) {
    return buildUrl + "/steps/" + encodeURIComponent(step) + tail;
  }

  function direction() {
    var canvas = document.querySelector("#builder [data-builder-canvas]");
    return canvas ? canvas.getAttribute("data-direction") || "LR" : "";
  }

  function selectedStep() {
    var marked = panel() && panel().querySelector("[data-selected-step]");
    return marked ? marked.getAttribute("data-selected-step") : "";
  }

  function post(step, tail, values) {
    window.htmx.ajax("POST", stepUrl(step, tail), {
      source: panel(), target: "#builder-panel", swap: "innerHTML", values: values || {},
    });
  }

  function open(url) {
    window.htmx.ajax("GET", url, { source: panel(), target: "#builder-panel", swap: "innerHTML" });
    if (window.history && window.history.pushState) window.history.pushState({}, "", url);
  }

  // Focus the field `id` of the commands of `step` when they are there; true when done.
  function focusField(step, id) {
    var section = document.querySelector("#step-commands[data-commands-step]");
    if (!section || section.getAttribute("data-commands-step") !== step) return false;
    var field = document.getElementById(id);
    if (!field) return false;
    var more = field.closest("details");
    if (more) more.open = true;
    field.focus();
    if (field.select) field.select();
    return true;
  }

  function focusNode(step) {
    if (!step) return false;
    var nodes = document.querySelectorAll("#builder [data-builder-canvas] a.node[data-step]");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].getAttribute("data-step") === step) {
        nodes[i].focus();
        return true;
      }
    }
    return false;
  }

  var KEYS = { Delete: "delete", d: "duplicate", a: "after", b: "branch", r: "rename", c: "connect" };

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var link = event.target.closest ? event.target.closest("[data-builder-canvas] a.node") : null;
    if (!link || link.classList.contains("trigger")) return;
    var command = KEYS[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!command) return;
    var step = link.getAttribute("data-step");
    event.preventDefault();
    if (command === "delete") {
      if (!window.confirm("Delete step '" + step + "'? The steps that needed it will need its own needs instead; Undo brings it back.")) return;
      pending = { focus: "node" };
      post(step, "/delete", { direction: direction() });
    } else if (command === "duplicate") {
      pending = { focus: "node" };
      post(step, "/duplicate", { direction: direction() });
    } else if (command === "after" || command === "branch") {
      open(buildUrl + "?panel=catalog&" + command + "=" + encodeURIComponent(step));
    } else {
      var id = command === "rename" ? "step-rename-input" : "step-connect-source";
      pending = { step: step, focus: id, back: true };
      if (!focusField(step, id)) {
        var tail = direction() === "TB" ? "&direction=TB" : "";
        open(buildUrl + "?step=" + encodeURIComponent(step) + tail);
      }
    }
  });

  // The step commands' fields: their events are not the step form's (it would save), and
  // Enter presses the field's own button; Escape goes back to the canvas when it came from it.
  function commandField(target) {
    return target && target.closest ? target.closest("#step-commands [data-command-input]") : null;
  }
  ["input", "change"].forEach(function (type) {
    window.addEventListener(type, function (event) {
      if (commandField(event.target)) event.stopPropagation();
    }, true);
  });
  window.addEventListener("keydown", function (event) {
    var field = commandField(event.target);
    if (!field) return;
    if (event.key === "Enter") {
      event.preventDefault();
      event.stopPropagation();
      var button = document.getElementById(field.getAttribute("data-command-input"));
      if (button) button.click();
    } else if (event.key === "Escape" && pending && pending.back) {
      event.preventDefault();
      var step = selectedStep();
      pending = null;
      focusNode(step);
    }
  }, true);

  // The list view's move buttons.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-move-step]") : null;
    if (button) {
      moved = { step: button.getAttribute("data-move-step"), offset: button.getAttribute("data-move-offset") };
      return;
    }
    var keys = event.target.closest ? event.target.closest("button[data-canvas-keys]") : null;
    if (keys) {
      var help = document.getElementById(keys.getAttribute("aria-controls"));
      if (!help) return;
      help.hidden = !help.hidden;
      keys.setAttribute("aria-expanded", help.hidden ? "false" : "true");
    }
  });

  function afterMove() {
    var confirm = panel() && panel().querySelector(".move-confirm button[data-move-mode]");
    if (confirm) { confirm.focus(); return; }
    var buttons = document.querySelectorAll("#builder-list-region button[data-move-step]");
    var fallback = null;
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].getAttribute("data-move-step") !== moved.step) continue;
      if (buttons[i].getAttribute("data-move-offset") === moved.offset && !buttons[i].disabled) {
        buttons[i].focus();
        moved = null;
        return;
      }
      if (!buttons[i].disabled) fallback = buttons[i];
    }
    if (fallback) fallback.focus();
    moved = null;
  }

  document.body.addEventListener("htmx:configRequest", function (event) {
    var path = event.detail.path || "";
    if (event.detail.verb !== "post" || path.indexOf(buildUrl) !== 0) return;
    if (event.detail.parameters.direction === undefined && direction() === "TB") {
      event.detail.parameters.direction = "TB";
    }
  });

  // A step focused on the canvas keeps the focus when the canvas is swapped after an edit
  // (undo, redo, any other part's edit); gone, the focus goes to the drawing.
  var focusedStep = null;
  document.body.addEventListener("htmx:oobBeforeSwap", function () {
    var el = document.activeElement;
    focusedStep = el && el.matches && el.matches("[data-builder-canvas] a.node") ? el.getAttribute("data-step") : null;
  });
  document.body.addEventListener("htmx:oobAfterSwap", function () {
    if (!focusedStep) return;
    var step = focusedStep;
    focusedStep = null;
    if (document.activeElement && document.activeElement !== document.body) return;
    if (!focusNode(step)) {
      var svg = document.querySelector("#builder [data-builder-canvas] svg");
      if (svg) svg.focus();
    }
  });

  // After the swaps (builder.js focuses the side panel first: this runs after it).
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target) return;
    window.setTimeout(function () {
      if (moved && target.id === "builder-panel") { afterMove(); return; }
      if (!pending) return;
      if (pending.back && target.id === "step-commands") {
        focusField(selectedStep(), pending.focus); // refused: the reason, and the field again
        return;
      }
      if (pending.focus === "node") {
        if (target.id === "builder-panel" && focusNode(selectedStep())) pending = null;
        return;
      }
      var verb = event.detail.requestConfig ? event.detail.requestConfig.verb : "get";
      if (pending.back && verb === "post" && target.id === "builder-panel") {
        // The rename or the connection was made: back to the step on the canvas.
        var step = selectedStep();
        pending = null;
        focusNode(step);
        return;
      }
      if (pending.step && focusField(pending.step, pending.focus)) pending.step = null;
    }, 0);
  });
})();
