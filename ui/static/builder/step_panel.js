// The flow builder's step panel (builder/_panel_step.html): what the server-rendered form
// cannot do alone.
// - The form saves itself: a change saves at once, typing saves after a 40 ms pause (the
//   event "step-save" on the form: its hx-trigger). The answer swaps only issue slots, so
//   the field being typed in keeps its focus and caret.
// - The Fixed | Expression switch of a field shows one part and disables the other (only the
//   part shown is submitted), then saves.
// - Choosing another alternative of a choice (oneOf) asks the server to draw its fields
//   (the choice's "Show its fields" button); ticking a step under "Runs after" picks
//   "After these steps"; Enter in a field saves (never Add or Remove); another connection
//   lists the options of the fields that have them again.
// - Saves carry the draft's revision; Undo and Redo ask for the step panel back.
// No inline handlers (the content security policy forbids them); wired by data attributes.
(function () {
  "use strict";

  var DELAY = 40;
  var timer = null;
  var reloadOptions = false; // the connection changed: list the options again after the save

  function panelForm() { return document.querySelector("form[data-step-form]"); }

  function save(form, now) {
    if (timer) { clearTimeout(timer); timer = null; }
    form.setAttribute("data-pending", "true"); // until the answer (tests wait on it)
    if (now) {
      htmx.trigger(form, "step-save");
      return;
    }
    timer = setTimeout(function () {
      timer = null;
      if (document.body.contains(form)) htmx.trigger(form, "step-save");
    }, DELAY);
  }

  function setPart(part, on) {
    if (!part) return;
    part.disabled = !on;
    part.hidden = !on;
  }

  function switchField(box) {
    var wrap = box.closest("[data-step-field]");
    if (!wrap) return;
    var id = box.id.replace(/-expr$/, "");
    var fixed = document.getElementById(id + "-fixed");
    var expression = document.getElementById(id + "-expression");
    var text = document.getElementById(id + "-text");
    if (box.checked && text && text.value === "" && fixed) {
      // A plain text field becomes the expression's first text.
      var plain = fixed.querySelector("input[type=text], input[type=url], input[type=email], textarea");
      if (plain && plain.name === text.name && plain.value) text.value = plain.value;
    }
    setPart(fixed, !box.checked);
    setPart(expression, box.checked);
    wrap.classList.toggle("is-expression", box.checked);
  }

  document.addEventListener("change", function (event) {
    var form = panelForm();
    var el = event.target;
    if (!form || !form.contains(el)) return;
    if (el.hasAttribute("data-expr-switch")) {
      switchField(el);
      save(form, true);
      return;
    }
    if (el.tagName === "SELECT" && /\.__choice__$/.test(el.name)) {
      var show = el.closest(".field").querySelector("button[name=_form_op][value=refresh]");
      if (show) { show.click(); return; }
    }
    if (el.name === "step.connection") reloadOptions = true; // once the step has it
    if (el.hasAttribute("data-needs-step") && el.checked) {
      var steps = document.getElementById("step-needs-steps");
      if (steps) steps.checked = true;
    }
    save(form, true);
  });

  document.addEventListener("input", function (event) {
    var form = panelForm();
    var el = event.target;
    if (!form || !form.contains(el)) return;
    if (el.type === "checkbox" || el.type === "radio" || el.tagName === "SELECT") return;
    save(form, false);
  });

  // Add, Remove and "Show its fields" are submit buttons (they work without script): here
  // their operation goes in the form's hidden _form_op, so that a save already in flight
  // (the field just left) and this one are queued in order and none loses it.
  document.addEventListener("click", function (event) {
    var form = panelForm();
    var button = event.target instanceof Element ? event.target.closest("button[name=_form_op]") : null;
    if (!form || !button || !form.contains(button)) return;
    var op = form.querySelector("input[data-form-op]");
    if (!op) return;
    event.preventDefault();
    op.value = button.value;
    save(form, true);
  });

  document.addEventListener("keydown", function (event) {
    var form = panelForm();
    var el = event.target;
    if (!form || !form.contains(el) || event.key !== "Enter") return;
    if (el.tagName !== "INPUT" || el.type === "checkbox" || el.type === "radio") return;
    if (el.type === "submit" || el.type === "button") return;
    event.preventDefault(); // the form's first button would be Add or Remove
    save(form, true);
  });

  document.body.addEventListener("htmx:configRequest", function (event) {
    var path = event.detail.path || "";
    var form = panelForm();
    var bar = document.getElementById("builder-toolbar");
    if (form && event.detail.elt === form) {
      if (timer) { clearTimeout(timer); timer = null; }
      if (bar) event.detail.parameters.revision = bar.getAttribute("data-revision");
      var op = form.querySelector("input[data-form-op]");
      if (op) op.value = ""; // sent with this request only
    }
    if (event.detail.verb === "post" && /\/build\/(undo|redo)$/.test(path)) {
      var panel = document.querySelector("#builder-panel [data-panel=step][data-selected-step]");
      if (panel) {
        event.detail.parameters.select = panel.getAttribute("data-selected-step");
        event.detail.parameters.panel = "step";
      }
    }
  });

  document.body.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || !form.hasAttribute || !form.hasAttribute("data-step-form")) return;
    if (!timer) form.removeAttribute("data-pending");
    if (reloadOptions) {
      reloadOptions = false;
      form.querySelectorAll("[data-options-refresh]").forEach(function (button) { button.click(); });
    }
  });

  function prepare(root) {
    (root || document).querySelectorAll("form[data-step-form] button[name=_form_op][value=refresh]").forEach(function (button) {
      button.hidden = true; // changing the select draws the alternative's fields
    });
  }
  document.addEventListener("DOMContentLoaded", function () { prepare(document); });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "builder-panel") return;
    prepare(target);
    var wanted = target.querySelector("form[data-step-form] [autofocus]");
    if (wanted) wanted.focus();
  });
})();
