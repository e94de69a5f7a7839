// The flow builder's expressions (hub/web/builder/expressions.py): one code editor that
// moves to the expression field that gets focus, completion, lint and preview, and the data
// tree of the step panel (drag an item onto a field, or Enter/click to insert it).
//
// The fields are the step panel's and the flow panel's elements with [data-expression-field]
// (data-step, data-pointer, data-setting). The editor (HubEditor, ui/static/vendor/codemirror)
// mounts after the field and hides it; every edit writes the text back to the field and
// fires its "input" event (its form saves it as it does without the editor), leaving it
// fires "change". Completion asks POST {build}/complete; the preview and the diagnostics
// come from POST {build}/preview, 300 ms after the last keystroke (a keystroke itself only
// copies the text and restarts a timer). Tab leaves the editor; Escape closes completion.
// No inline handlers, no styles set from here (the content security policy forbids them).
(function () {
  "use strict";

  var PREVIEW_DELAY = 300;
  var FIELD = "[data-expression-field]";
  var state = {
    editor: null, // the HubEditor
    field: null, // the field it edits
    holder: null, // the editor's element
    preview: null, // the preview under the field
    changed: false, // edited since the last "change"
    timer: null,
    seq: 0,
    lastField: null, // the field last focused (an expression or a fixed control)
    onSelect: null, // the field's "select" listener
  };

  function builder() { return document.getElementById("builder"); }
  function buildUrl() {
    var b = builder();
    return b ? b.getAttribute("data-build-url") : null;
  }

  function csrfToken() {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      return headers["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function fieldParams(field) {
    return {
      step: field.getAttribute("data-step") || "",
      pointer: field.getAttribute("data-pointer") || "",
      setting: field.getAttribute("data-setting") || "",
    };
  }

  function post(tail, params) {
    var url = buildUrl();
    if (!url) return Promise.resolve(null);
    return fetch(url + tail, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(params),
    }).then(function (answer) { return answer.ok ? answer.json() : null; })
      .catch(function () { return null; });
  }

  function fire(el, type) { el.dispatchEvent(new Event(type, { bubbles: true })); }

  function labelOf(field) {
    var label = field.labels && field.labels[0];
    return (label && label.textContent.replace(/\s+/g, " ").trim()) || field.getAttribute("aria-label") || "Expression";
  }

  // --- Completion -------------------------------------------------------------------------

  function completeSource(field) {
    return function (text, pos) {
      var before = text.slice(0, pos);
      var open = Math.max(before.lastIndexOf("{{"), before.lastIndexOf("{%"));
      if (open < 0) return Promise.resolve(null);
      var params = fieldParams(field);
      params.text = before;
      params.pos = String(before.length);
      return post("/complete", params).then(function (found) {
        if (!found || !found.options || !found.options.length) return null;
        return { from: found.from, options: found.options, validFor: /^\w*$/ };
      });
    };
  }

  // --- Preview and lint ---------------------------------------------------------------------

  function schedulePreview() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(runPreview, PREVIEW_DELAY);
  }

  function runPreview() {
    state.timer = null;
    var field = state.field;
    var editor = state.editor;
    if (!field || !editor) return;
    var text = editor.getText();
    var seq = ++state.seq;
    if (text.indexOf("{{") < 0 && text.indexOf("{%") < 0) {
      editor.setDiagnostics([]);
      showPreview(null);
      return;
    }
    var params = fieldParams(field);
    params.text = text;
    post("/preview", params).then(function (found) {
      if (seq !== state.seq || state.editor !== editor || !found) return;
      editor.setDiagnostics(found.diagnostics || []);
      showPreview(found);
    });
  }

  function showPreview(found) {
    var box = state.preview;
    if (!box) return;
    box.textContent = "";
    box.classList.remove("expr-preview-error");
    if (!found) { box.hidden = true; return; }
    box.hidden = false;
    if (found.error) {
      box.classList.add("expr-preview-error");
      box.textContent = found.error;
      return;
    }
    var lead = document.createElement("span");
    lead.className = "expr-preview-label";
    lead.textContent = "Preview" + (found.source ? " (" + found.source + ")" : "") + ": ";
    var value = document.createElement("code");
    value.className = "expr-preview-value";
    value.textContent = found.text;
    box.appendChild(lead);
    box.appendChild(value);
  }

  // --- The editor ------------------------------------------------------------------------

  function unmount() {
    if (!state.editor) return;
    if (state.timer) { clearTimeout(state.timer); state.timer = null; }
    var field = state.field;
    if (state.changed && field && document.body.contains(field)) fire(field, "change");
    if (field && state.onSelect) field.removeEventListener("select", state.onSelect);
    state.editor.destroy();
    if (state.holder) state.holder.remove();
    if (state.preview) state.preview.remove();
    if (field) field.hidden = false;
    state.editor = state.field = state.holder = state.preview = null;
    state.changed = false;
  }

  function focusables() {
    var all = document.querySelectorAll(
      "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1']), [contenteditable='true']");
    return Array.prototype.filter.call(all, function (el) {
      return !el.matches(":disabled") && el.offsetParent !== null && el.getAttribute("tabindex") !== "-1";
    });
  }

  /** Move the focus out of the editor: to the next (or previous) element that takes it. */
  function leave(backwards) {
    var list = focusables();
    var inside = state.holder;
    if (!inside) return;
    var first = -1;
    var last = -1;
    list.forEach(function (el, i) {
      if (inside.contains(el)) { if (first < 0) first = i; last = i; }
    });
    if (first < 0) return;
    var step = backwards ? -1 : 1;
    for (var i = backwards ? first - 1 : last + 1; i >= 0 && i < list.length; i += step) {
      list[i].focus();
      if (document.activeElement === list[i]) return;
    }
  }

  function mount(field) {
    if (state.field === field && state.editor) return state.editor;
    unmount();
    if (typeof HubEditor === "undefined") return null;
    var holder = document.createElement("div");
    holder.className = "expr-editor";
    var preview = document.createElement("div");
    preview.className = "expr-preview";
    preview.setAttribute("role", "status");
    preview.setAttribute("aria-live", "polite");
    preview.hidden = true;
    field.after(holder);
    holder.after(preview);
    state.field = field;
    state.holder = holder;
    state.preview = preview;
    state.changed = false;
    var editor = HubEditor.create(holder, {
      doc: field.value,
      language: "expression",
      label: labelOf(field),
      singleLine: field.tagName === "INPUT",
      onChange: function (text) {
        field.value = text;
        state.changed = true;
        fire(field, "input");
        schedulePreview();
      },
      onBlur: function () {
        if (state.changed && state.field === field) {
          state.changed = false;
          fire(field, "change");
        }
      },
      complete: completeSource(field),
    });
    state.editor = editor;
    // The field's own selection follows into the editor (a script's select() before it types).
    state.onSelect = function () {
      if (state.field !== field) return;
      var length = editor.view.state.doc.length;
      var anchor = Math.min(field.selectionStart || 0, length);
      var head = Math.min(field.selectionEnd || 0, length);
      editor.view.dispatch({ selection: { anchor: anchor, head: head } });
    };
    field.addEventListener("select", state.onSelect);
    state.onSelect(); // where the field's caret or selection was when it got the focus
    field.hidden = true;
    var described = field.getAttribute("aria-describedby");
    if (described) editor.view.contentDOM.setAttribute("aria-describedby", described);
    if (field.getAttribute("aria-invalid")) editor.view.contentDOM.setAttribute("aria-invalid", "true");
    // Tab leaves the editor (a multi-line editor would indent); Escape is completion's.
    holder.addEventListener("keydown", function (event) {
      if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey) return;
      event.preventDefault();
      event.stopPropagation();
      leave(event.shiftKey);
    }, true);
    // Text inserted over a selection is replaced here, not by the browser's own editing
    // (which would add an inline style the content security policy refuses).
    holder.addEventListener("beforeinput", function (event) {
      var view = editor.view;
      var range = view.state.selection.main;
      if (range.empty || typeof event.data !== "string") return;
      if (event.inputType !== "insertText" && event.inputType !== "insertReplacementText") return;
      event.preventDefault();
      view.dispatch(Object.assign(view.state.replaceSelection(event.data), {
        userEvent: "input.type", scrollIntoView: true,
      }));
    }, true);
    schedulePreview();
    return editor;
  }

  document.addEventListener("focusin", function (event) {
    var el = event.target;
    if (!(el instanceof Element)) return;
    if (el.matches(FIELD)) {
      state.lastField = el;
      var editor = mount(el);
      if (editor) editor.focus();
      return;
    }
    if (state.holder && state.holder.contains(el)) return;
    if (el.closest("[data-step-field] .step-fixed") && el.matches("input, textarea, select")) {
      state.lastField = el;
    }
  });

  // A click on the hidden field's label focuses the editor.
  document.addEventListener("click", function (event) {
    var label = event.target instanceof Element ? event.target.closest("label[for]") : null;
    if (!label || !state.field || label.htmlFor !== state.field.id) return;
    event.preventDefault();
    state.editor.focus();
  });

  // A swapped panel takes its fields away: the editor goes with them.
  document.body.addEventListener("htmx:afterSettle", function () {
    if (state.field && !document.body.contains(state.field)) unmount();
    if (state.lastField && !document.body.contains(state.lastField)) state.lastField = null;
  });

  // After the step's form is saved (its needs may have changed what it reads), the data
  // tree is loaded again, unless the focus is in it.
  var staleTimer = null;
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!event.detail.successful || !(elt instanceof Element) || !elt.matches("form[data-step-form]")) return;
    if (staleTimer) clearTimeout(staleTimer);
    staleTimer = setTimeout(function () {
      staleTimer = null;
      var data = document.getElementById("step-data");
      if (data && !data.contains(document.activeElement)) htmx.trigger(data, "hub-data-stale");
    }, 800);
  });

  // --- Inserting an expression (the data tree) ---------------------------------------------

  function expressionFieldOf(wrap) {
    var box = wrap.querySelector("[data-expr-switch]");
    if (!box) return wrap.querySelector(FIELD);
    return document.getElementById(box.id.replace(/-expr$/, "") + "-text");
  }

  /** Put `text` into the field (or the step field holding `target`): a fixed field is
   * switched to an expression first and takes the text whole; an expression field takes it
   * at its caret (or at the end). */
  function insertInto(target, text) {
    var field = target.matches(FIELD) ? target : null;
    var replace = false;
    var wrap = target.closest("[data-step-field]");
    if (!field && wrap) {
      var box = wrap.querySelector("[data-expr-switch]");
      if (box && !box.checked) {
        box.checked = true;
        fire(box, "change");
        replace = true;
      }
      field = expressionFieldOf(wrap);
    }
    if (!field) return false;
    var editor = mount(field);
    if (editor) {
      var view = editor.view;
      var range = view.state.selection.main;
      var from = replace ? 0 : range.from;
      var to = replace ? view.state.doc.length : range.to;
      view.dispatch({ changes: { from: from, to: to, insert: text }, selection: { anchor: from + text.length } });
      editor.focus();
    } else {
      var start = replace ? 0 : field.selectionStart || field.value.length;
      var end = replace ? field.value.length : field.selectionEnd || start;
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      fire(field, "input");
      field.focus();
    }
    state.lastField = field;
    if (state.changed && state.field === field) state.changed = false;
    fire(field, "change");
    return true;
  }

  // --- The data tree ---------------------------------------------------------------------

  function treeOf(el) { return el.closest("[role=tree]"); }
  function visibleItems(tree) {
    return Array.prototype.filter.call(tree.querySelectorAll("[role=treeitem]"), function (item) {
      return item.offsetParent !== null;
    });
  }
  function groupOf(item) { return item.querySelector(":scope > [role=group]"); }
  function setExpanded(item, open) {
    var group = groupOf(item);
    if (!group) return;
    group.hidden = !open;
    item.setAttribute("aria-expanded", open ? "true" : "false");
  }
  function focusItem(item) {
    var tree = treeOf(item);
    tree.querySelectorAll("[role=treeitem][tabindex='0']").forEach(function (other) {
      other.setAttribute("tabindex", "-1");
    });
    item.setAttribute("tabindex", "0");
    item.focus();
  }

  function announce(tree, message) {
    var box = tree.parentElement.querySelector(".data-tree-status");
    if (box) box.textContent = message;
  }

  function insertItem(item) {
    var text = item.getAttribute("data-insert");
    var target = state.lastField && document.body.contains(state.lastField) ? state.lastField : null;
    if (!target) {
      announce(treeOf(item), "Click in a field first, then choose the value to insert.");
      return;
    }
    insertInto(target, text);
  }

  document.addEventListener("keydown", function (event) {
    var item = event.target instanceof Element ? event.target.closest("[role=treeitem]") : null;
    if (!item || !treeOf(item)) return;
    var items = visibleItems(treeOf(item));
    var index = items.indexOf(item);
    var group = groupOf(item);
    var open = item.getAttribute("aria-expanded") === "true";
    switch (event.key) {
      case "ArrowDown": if (items[index + 1]) focusItem(items[index + 1]); break;
      case "ArrowUp": if (index > 0) focusItem(items[index - 1]); break;
      case "Home": focusItem(items[0]); break;
      case "End": focusItem(items[items.length - 1]); break;
      case "ArrowRight":
        if (group && !open) setExpanded(item, true);
        else if (group) focusItem(group.querySelector("[role=treeitem]"));
        break;
      case "ArrowLeft":
        if (group && open) setExpanded(item, false);
        else {
          var parent = item.parentElement.closest("[role=treeitem]");
          if (parent) focusItem(parent);
        }
        break;
      case "Enter": case " ": insertItem(item); break;
      default: return;
    }
    event.preventDefault();
    event.stopPropagation();
  });

  document.addEventListener("click", function (event) {
    var row = event.target instanceof Element ? event.target.closest(".data-tree-row") : null;
    if (!row) return;
    var item = row.closest("[role=treeitem]");
    if (groupOf(item)) {
      setExpanded(item, item.getAttribute("aria-expanded") !== "true");
      focusItem(item);
    } else {
      insertItem(item);
    }
  });

  // Drag an item onto a field.
  var DROP = "[data-step-field], " + FIELD + ", .expr-editor";
  document.addEventListener("dragstart", function (event) {
    var item = event.target instanceof Element ? event.target.closest("[role=treeitem][data-insert]") : null;
    if (!item) return;
    event.dataTransfer.setData("text/plain", item.getAttribute("data-insert"));
    event.dataTransfer.effectAllowed = "copy";
    event.stopPropagation();
  });

  function dropTarget(event) {
    var el = event.target instanceof Element ? event.target : null;
    if (!el || !event.dataTransfer || Array.prototype.indexOf.call(event.dataTransfer.types, "text/plain") < 0) return null;
    var found = el.closest(DROP);
    if (found && found.classList.contains("expr-editor")) return state.field;
    return found;
  }

  document.addEventListener("dragover", function (event) {
    var target = dropTarget(event);
    if (!target) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    document.querySelectorAll(".expr-drop-target").forEach(function (el) {
      if (el !== target) el.classList.remove("expr-drop-target");
    });
    target.classList.add("expr-drop-target");
  });

  document.addEventListener("dragleave", function (event) {
    var target = dropTarget(event);
    if (target && !target.contains(event.relatedTarget)) target.classList.remove("expr-drop-target");
  });

  document.addEventListener("drop", function (event) {
    document.querySelectorAll(".expr-drop-target").forEach(function (el) { el.classList.remove("expr-drop-target"); });
    if (event.defaultPrevented) return; // the editor took it at the drop point
    var target = dropTarget(event);
    if (!target) return;
    event.preventDefault();
    insertInto(target, event.dataTransfer.getData("text/plain"));
  });
})();
