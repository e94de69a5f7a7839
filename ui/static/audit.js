// Time filters in the browser's time zone. <input type="datetime-local" data-utc> holds UTC
// in the page and in the URL (a filtered link means the same everywhere); this shows it in
// the browser's own time and turns what is typed back into UTC when the form is sent;
// empty filters are left out of the URL.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }
  function wire() {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time";
    document.querySelectorAll("input[data-utc]").forEach(function (input) {
      var value = input.value;
      if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value)) {
        var date = new Date(value + ":00Z");
        if (!isNaN(date)) input.value = localValue(date);
      }
      var label = document.querySelector("label[for='" + input.id + "']");
      if (label) label.textContent = label.textContent.replace("(UTC)", "(" + zone + ")");
      if (input.form && !input.form.hasAttribute("data-utc-wired")) {
        input.form.setAttribute("data-utc-wired", "");
        input.form.addEventListener("submit", function () {
          input.form.querySelectorAll("input[data-utc]").forEach(function (field) {
            var local = new Date(field.value);  // no offset: the browser's local time
            if (field.value && !isNaN(local)) field.value = local.toISOString().slice(0, 16);
          });
          // Empty filters stay out of the URL (a shorter link to share).
          input.form.querySelectorAll("input[name]").forEach(function (field) {
            if (!field.value) field.disabled = true;
          });
        });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", wire);
})();
