/* Starts Swagger UI on /schema/swagger (hub/api/reference_pages.py): the page's content
   security policy allows no inline script, so its settings come from data attributes of
   #swagger-ui: data-url (the OpenAPI document), data-csrf-cookie and data-csrf-header (the
   CSRF cookie sent back as a header on "Try it out" requests with a session cookie). */
(function () {
  "use strict";

  function cookie(name) {
    var prefix = name + "=";
    var found = document.cookie.split("; ").find(function (row) {
      return row.indexOf(prefix) === 0;
    });
    return found === undefined ? undefined : decodeURIComponent(found.slice(prefix.length));
  }

  function start() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") return;
    var csrfCookie = root.dataset.csrfCookie;
    var csrfHeader = root.dataset.csrfHeader;
    window.SwaggerUIBundle({
      url: root.dataset.url,
      domNode: root,
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      requestInterceptor: function (request) {
        var token = csrfCookie ? cookie(csrfCookie) : undefined;
        if (token !== undefined && csrfHeader) request.headers[csrfHeader] = token;
        return request;
      },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
