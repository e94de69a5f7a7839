// The builder's YAML view (hub/web/builder/yaml_tab.py, builder/_yaml.html).
// - The textarea [data-yaml-text] becomes the code editor (HubEditor.fromTextarea: the
//   textarea stays the form's field and follows every change).
// - The text is posted to {build}/yaml 500 ms after the last keystroke, when the editor
//   loses the focus, and on submit; one post at a time (the next waits for the answer, so
//   each carries the revision the toolbar got from the one before). The answer replaces the
//   status under the editor (#builder-yaml-status) and swaps the toolbar and the issues out
//   of band; the status's data-diagnostics are marked in the editor at their lines.
// - While the text does not read (data-yaml-state="invalid"), the links to the canvas and
//   the steps list are refused with a message; a link followed with a post pending waits
//   for its answer first.
// - An edit from elsewhere (Undo, Redo, the side panel) that changed the draft reloads the
//   region (GET {build}/yaml), so the editor shows the draft's text; a text that changed the
//   document has the side panel drawn anew (once the focus is out of the editor).
// No inline handlers, no styles set from here (the content security policy forbids them).
(function () {
  "use strict";

  var DELAY = 500;
  var BLOCKED =
    "The YAML does not read: fix the error first (the canvas and the steps list show the " +
    "draft, which keeps its last valid document until then).";
  var st = {
    editor: null, // the HubEditor
    timer: null, // the post waiting for a pause in the typing
    sending: null, // the post in flight (a promise)
    again: false, // post again when it is answered
    lastSent: null, // the text last posted
    known: null, // the draft's revision the editor's text is
    panelStale: false, // the side panel was drawn before the text changed the document
  };

  function region() { return document.getElementById("builder-yaml"); }
  function form() { var r = region(); return r && r.querySelector("[data-yaml-form]"); }
  function statusEl() { return document.getElementById("builder-yaml-status"); }
  function invalid() {
    var s = statusEl();
    return !!s && s.getAttribute("data-yaml-state") === "invalid";
  }
  function toolbarRevision() {
    var bar = document.getElementById("builder-toolbar");
    return bar ? bar.getAttribute("data-revision") : null;
  }
  function buildUrl() {
    var b = document.getElementById("builder");
    return b ? b.getAttribute("data-build-url") : null;
  }
  function text() {
    var f = form();
    if (st.editor) return st.editor.getText();
    return f ? f.elements.text.value : "";
  }

  function blocked(message) {
    var el = document.getElementById("builder-yaml-blocked");
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("flash", !!message);
    el.classList.toggle("flash-error", !!message);
  }

  // The status under the editor: its diagnostics into the editor, its revision known.
  function applyStatus() {
    var s = statusEl();
    if (!s) return;
    st.known = s.getAttribute("data-revision");
    var f = form();
    if (f) {
      if (invalid()) f.elements.text.setAttribute("aria-invalid", "true");
      else f.elements.text.removeAttribute("aria-invalid");
    }
    if (!invalid()) blocked("");
    if (!st.editor) return;
    var items = [];
    try {
      items = JSON.parse(s.getAttribute("data-diagnostics") || "[]");
    } catch (e) {
      items = [];
    }
    st.editor.setDiagnostics(items);
  }

  // Post the text (unless it was posted already); resolves after the answer is swapped in.
  function send() {
    clearTimeout(st.timer);
    st.timer = null;
    if (st.sending) {
      st.again = true;
      return st.sending;
    }
    var f = form();
    var now = text();
    if (!f || now === st.lastSent) return Promise.resolve();
    st.lastSent = now;
    f.elements.text.value = now;
    var revision = toolbarRevision();
    if (revision !== null) f.elements.revision.value = revision;
    var before = st.known;
    function done() {
      st.sending = null;
      applyStatus();
      if (st.known !== before) st.panelStale = true;
      refreshPanel();
      if (st.again) {
        st.again = false;
        return send();
      }
      return undefined;
    }
    st.sending = window.htmx
      .ajax("POST", f.getAttribute("action"), {
        source: f,
        target: "#builder-yaml-status",
        swap: "outerHTML",
      })
      .then(done, done);
    return st.sending;
  }

  // The side panel draws the document as it was: drawn anew once a text that changed the
  // document is applied, unless the focus is in the editor (it is then drawn when the
  // editor loses it) or in the panel (a field there is not taken away from under the person).
  function refreshPanel() {
    var panel = document.getElementById("builder-panel");
    if (!st.panelStale || !panel || st.sending || st.timer) return;
    if (panel.contains(document.activeElement)) return;
    if (st.editor && st.editor.view.hasFocus) return;
    st.panelStale = false;
    window.htmx.ajax("GET", window.location.href, {
      source: panel,
      target: "#builder-panel",
      swap: "innerHTML",
    });
  }

  function pending() { return st.timer !== null || st.sending !== null || text() !== st.lastSent; }

  function goToLine(number) {
    if (!st.editor) return;
    var view = st.editor.view;
    var doc = view.state.doc;
    var line = doc.line(Math.max(1, Math.min(number, doc.lines)));
    view.dispatch({ selection: { anchor: line.from, head: line.to }, scrollIntoView: true });
    st.editor.focus();
  }

  function enhance() {
    var f = form();
    if (!f || f.hasAttribute("data-yaml-ready")) return;
    f.setAttribute("data-yaml-ready", "");
    var area = f.elements.text;
    if (st.editor) {
      st.editor.view.destroy(); // its region was replaced
      st.editor = null;
    }
    st.lastSent = area.value;
    if (window.HubEditor) {
      st.editor = window.HubEditor.fromTextarea(area, {
        language: "yaml",
        onChange: function () {
          clearTimeout(st.timer);
          st.timer = setTimeout(send, DELAY);
        },
        onBlur: function () {
          send();
          refreshPanel();
        },
      });
    }
    f.addEventListener("submit", function (event) {
      event.preventDefault();
      send();
    });
    f.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("[data-yaml-line]");
      if (button) goToLine(parseInt(button.getAttribute("data-yaml-line"), 10) || 1);
    });
    applyStatus();
  }

  // The links to the other views: refused while the text does not read; after the pending
  // post's answer otherwise.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-view-link]");
    if (!link || !form() || link.getAttribute("data-view-link") === "yaml") return;
    if (invalid() && !pending()) {
      event.preventDefault();
      blocked(BLOCKED);
      if (st.editor) st.editor.focus();
      return;
    }
    if (!pending()) return;
    event.preventDefault();
    send().then(function () {
      if (invalid()) {
        blocked(BLOCKED);
        if (st.editor) st.editor.focus();
      } else {
        window.location.assign(link.href);
      }
    });
  }, true);

  // An edit from elsewhere changed the draft: show its text.
  document.addEventListener("htmx:afterRequest", function (event) {
    var f = form();
    if (!f || event.detail.elt === f) return;
    window.setTimeout(function () {
      var revision = toolbarRevision();
      if (!form() || st.sending || revision === null || revision === st.known) return;
      st.known = revision;
      window.htmx.ajax("GET", buildUrl() + "/yaml", {
        source: region(),
        target: "#builder-yaml",
        swap: "outerHTML",
      });
    }, 0);
  });

  // Leaving with text that does not read (it is in no draft): the browser asks first.
  window.addEventListener("beforeunload", function (event) {
    if (!form() || !invalid()) return;
    event.preventDefault();
    event.returnValue = "";
  });

  document.addEventListener("DOMContentLoaded", enhance);
  document.addEventListener("htmx:load", enhance);
})();
