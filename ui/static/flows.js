// The Flows pages' own behaviour: an issue's "Line N" button in the YAML editor selects that
// line in the text area (wired by delegation, so fragments htmx swaps in work too).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-line]") : null;
    if (!button) return;
    var area = document.getElementById(button.getAttribute("data-for") || "flow-source");
    var line = parseInt(button.getAttribute("data-line"), 10);
    if (!area || !(line > 0)) return;
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[line - 1] || "").length;
    area.focus();
    area.setSelectionRange(start, end);
    // Bring the line into view: about one line's height per line above it.
    var height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 3) * height);
  });
})();
