// The Flows pages' own behaviour.
//
// - An issue's "Line N" button in the YAML editor selects that line in the editor (wired by
//   delegation, so fragments htmx swaps in work too).
// - The code editor (ui/static/vendor/codemirror/hub-editor.js, loaded before this file)
//   progressively enhances the textarea marked data-code-editor: the textarea stays the
//   form's field (hidden, its value following every edit) and the page without script; the
//   server's issues, listed in #issues with their line, show as diagnostics at their lines;
//   the text is validated by the server (the Validate button's request) a moment after
//   typing stops.
(function () {
  "use strict";
  var VALIDATE_AFTER_MS = 700;
  var editors = {}; // textarea id -> HubEditor

  function selectLine(area, line) {
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[line - 1] || "").length;
    area.setSelectionRange(start, end);
    var editor = editors[area.id];
    if (editor) {
      var doc = editor.view.state.doc;
      var target = doc.line(Math.min(line, doc.lines));
      editor.view.dispatch({
        selection: { anchor: target.from, head: target.to },
        scrollIntoView: true,
      });
      editor.focus();
      return;
    }
    area.focus();
    // Bring the line into view: about one line's height per line above it.
    var height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 3) * height);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-line]") : null;
    if (!button) return;
    var area = document.getElementById(button.getAttribute("data-for") || "flow-source");
    var line = parseInt(button.getAttribute("data-line"), 10);
    if (!area || !(line > 0)) return;
    selectLine(area, line);
  });

  // The issues the server listed (partials/flows/issues.html) as the editor's diagnostics.
  function showIssues(editor) {
    var list = document.querySelectorAll("#issues [data-issue-line]");
    var diagnostics = [];
    for (var i = 0; i < list.length; i++) {
      var line = parseInt(list[i].getAttribute("data-issue-line"), 10);
      if (line > 0) {
        diagnostics.push({
          line: line,
          message: list[i].getAttribute("data-issue-message") || "",
          severity: "error",
        });
      }
    }
    editor.setDiagnostics(diagnostics);
    var content = editor.view.contentDOM;
    if (document.querySelector("#issues [data-issue-message]")) {
      content.setAttribute("aria-invalid", "true");
    } else {
      content.removeAttribute("aria-invalid");
    }
  }

  function enhance(area) {
    if (!window.HubEditor || editors[area.id]) return;
    var form = area.form;
    var validate = form ? form.querySelector("button[data-validate]") : null;
    var timer = null;
    var editor = window.HubEditor.fromTextarea(area, {
      language: area.getAttribute("data-code-editor") || "yaml",
      onChange: function () {
        if (!validate) return;
        clearTimeout(timer);
        timer = setTimeout(function () {
          validate.click();
        }, VALIDATE_AFTER_MS);
      },
    });
    editors[area.id] = editor;
    showIssues(editor);
    if (form) {
      // The form posts the textarea: make sure it holds the last keystroke.
      form.addEventListener("submit", function () {
        clearTimeout(timer);
        area.value = editor.getText();
      });
    }
  }

  function start() {
    var areas = document.querySelectorAll("textarea[data-code-editor]");
    for (var i = 0; i < areas.length; i++) enhance(areas[i]);
  }

  document.addEventListener("htmx:afterSettle", function () {
    for (var id in editors) {
      if (Object.prototype.hasOwnProperty.call(editors, id)) showIssues(editors[id]);
    }
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
