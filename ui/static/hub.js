// The UI's own script: small behaviours that a server-rendered page cannot do alone.
// No inline handlers anywhere (the content security policy forbids them): everything is
// wired here by data attributes, and re-applied after htmx swaps content in.
(function () {
  "use strict";

  // <time datetime="..."> in the browser's own time zone (the HTML carries UTC).
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = format.format(d);
        el.setAttribute("data-local", "");
      }
    });
  }

  // <button data-copy="id">: copy the text (or value) of the element with that id.
  function copyButtons(root) {
    root.querySelectorAll("[data-copy]:not([data-wired])").forEach(function (button) {
      button.setAttribute("data-wired", "");
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        var text = source.value !== undefined ? source.value : source.textContent;
        var done = function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var area = document.createElement("textarea");
          area.value = text; document.body.appendChild(area); area.select();
          document.execCommand("copy"); area.remove(); done();
        }
      });
    });
  }

  // <form data-confirm="Delete flow X?">: ask before submitting (the server still checks).
  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]:not([data-wired])").forEach(function (form) {
      form.setAttribute("data-wired", "");
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // <select data-autosubmit> and <input data-autosubmit>: submit the form on change.
  function autoSubmit(root) {
    root.querySelectorAll("[data-autosubmit]:not([data-wired])").forEach(function (el) {
      el.setAttribute("data-wired", "");
      el.addEventListener("change", function () {
        if (el.form) el.form.requestSubmit();
      });
    });
  }

  function wire(root) {
    localTimes(root); copyButtons(root); confirmForms(root); autoSubmit(root);
  }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:load", function (event) { wire(event.detail.elt || document); });
  window.hubUI = { wire: wire };
})();
