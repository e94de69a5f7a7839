// The flow builder's canvas (ui/templates/builder/_canvas.html): pan and zoom by changing the
// SVG's viewBox attribute (never a style), arrow keys between neighbouring steps. No
// dependencies, nothing inline (strict CSP), at most one viewBox write per animation frame.
// Canvases that htmx swaps in are set up on htmx:load.
(function () {
  "use strict";

  var ZOOM_STEP = 1.25;
  var PAN_FRACTION = 0.1;
  var motion = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;
  // The last view of each canvas (by id), so that a canvas htmx swaps in after an edit keeps
  // the place and zoom the person had.
  var remembered = {};

  function reducedMotion() {
    return !!(motion && motion.matches);
  }

  function setup(root) {
    if (root.hasAttribute("data-canvas-ready")) return;
    var svg = root.querySelector("svg.canvas-svg");
    if (!svg) return;
    root.setAttribute("data-canvas-ready", "");
    var direction = root.getAttribute("data-direction") === "TB" ? "TB" : "LR";
    var full = { x: 0, y: 0, w: +svg.getAttribute("data-width") || 1, h: +svg.getAttribute("data-height") || 1 };
    var view = { x: full.x, y: full.y, w: full.w, h: full.h };
    var frame = 0;
    var animation = 0;

    function write() {
      frame = 0;
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].map(Math.round).join(" "));
      if (root.id) remembered[root.id] = { x: view.x, y: view.y, w: view.w, h: view.h };
    }
    function schedule() {
      if (!frame) frame = window.requestAnimationFrame(write);
    }
    function box() {
      var r = svg.getBoundingClientRect();
      return { left: r.left, top: r.top, w: r.width || 1, h: r.height || 1 };
    }
    // viewBox units per CSS pixel (preserveAspectRatio "meet": the larger ratio wins).
    function unitsPerPixel(b) {
      return Math.max(view.w / b.w, view.h / b.h);
    }
    function limits(b) {
      var widest = 4 * Math.max(full.w, full.h * (b.w / b.h));
      return { min: 120, max: Math.max(widest, 600) };
    }

    // Zoom by `factor` (> 1: out) keeping the point under (clientX, clientY) in place.
    function zoom(factor, clientX, clientY) {
      var b = box();
      var s = unitsPerPixel(b);
      var lim = limits(b);
      var w = Math.min(lim.max, Math.max(lim.min, view.w * factor));
      factor = w / view.w;
      var offX = (b.w * s - view.w) / 2;
      var offY = (b.h * s - view.h) / 2;
      var px = clientX === undefined ? b.w / 2 : clientX - b.left;
      var py = clientY === undefined ? b.h / 2 : clientY - b.top;
      var ux = view.x - offX + px * s;
      var uy = view.y - offY + py * s;
      view.w *= factor;
      view.h *= factor;
      view.x = ux + offX * factor - px * s * factor;
      view.y = uy + offY * factor - py * s * factor;
      schedule();
    }

    function fit() {
      stopAnimation();
      view.x = full.x; view.y = full.y; view.w = full.w; view.h = full.h;
      schedule();
    }

    function stopAnimation() {
      if (animation) window.cancelAnimationFrame(animation);
      animation = 0;
    }

    // Move the view so that (cx, cy) is in its centre: animated unless motion is reduced.
    function centreOn(cx, cy) {
      stopAnimation();
      var tx = cx - view.w / 2;
      var ty = cy - view.h / 2;
      if (reducedMotion()) {
        view.x = tx; view.y = ty; schedule();
        return;
      }
      var fromX = view.x, fromY = view.y, started = 0;
      function tick(now) {
        if (!started) started = now;
        var t = Math.min(1, (now - started) / 180);
        var ease = t * (2 - t);
        view.x = fromX + (tx - fromX) * ease;
        view.y = fromY + (ty - fromY) * ease;
        write();
        animation = t < 1 ? window.requestAnimationFrame(tick) : 0;
      }
      animation = window.requestAnimationFrame(tick);
    }

    // The nodes by layer and position, read once (the canvas is re-rendered, not mutated).
    var index = null;
    function nodes() {
      if (index) return index;
      index = { layers: {}, of: new Map() };
      var links = svg.querySelectorAll("a.node");
      for (var i = 0; i < links.length; i++) {
        var link = links[i];
        var rect = link.querySelector("rect.node-box");
        var entry = {
          el: link,
          layer: +link.getAttribute("data-layer"),
          pos: +link.getAttribute("data-pos"),
          x: +rect.getAttribute("x"), y: +rect.getAttribute("y"),
          w: +rect.getAttribute("width"), h: +rect.getAttribute("height"),
        };
        (index.layers[entry.layer] = index.layers[entry.layer] || [])[entry.pos] = entry;
        index.of.set(link, entry);
      }
      return index;
    }

    function visible(entry) {
      return entry.x >= view.x && entry.y >= view.y &&
        entry.x + entry.w <= view.x + view.w && entry.y + entry.h <= view.y + view.h;
    }

    function reveal(entry) {
      if (!visible(entry)) centreOn(entry.x + entry.w / 2, entry.y + entry.h / 2);
    }

    // The neighbour of `entry` in the direction of `key`, or null.
    function neighbour(entry, key) {
      var along = direction === "LR" ? { ArrowRight: 1, ArrowLeft: -1 } : { ArrowDown: 1, ArrowUp: -1 };
      var across = direction === "LR" ? { ArrowDown: 1, ArrowUp: -1 } : { ArrowRight: 1, ArrowLeft: -1 };
      var layers = nodes().layers;
      if (across[key]) {
        return (layers[entry.layer] || [])[entry.pos + across[key]] || null;
      }
      var row = layers[entry.layer + along[key]];
      if (!row) return null;
      var centre = direction === "LR" ? entry.y + entry.h / 2 : entry.x + entry.w / 2;
      var best = null, distance = Infinity;
      for (var i = 0; i < row.length; i++) {
        var other = row[i];
        if (!other) continue;
        var c = direction === "LR" ? other.y + other.h / 2 : other.x + other.w / 2;
        if (Math.abs(c - centre) < distance) { best = other; distance = Math.abs(c - centre); }
      }
      return best;
    }

    // Start: where this canvas was before a swap; else the whole flow when it is readable at
    // half size or more; else actual size around the selected step (or the trigger).
    (function start() {
      var before = root.id ? remembered[root.id] : null;
      if (before) {
        view.x = before.x; view.y = before.y; view.w = before.w; view.h = before.h;
        write();
        return;
      }
      var b = box();
      if (Math.max(full.w / b.w, full.h / b.h) <= 2) return;
      var chosen = svg.querySelector("a.node.selected") || svg.querySelector("a.node.trigger");
      var entry = chosen ? nodes().of.get(chosen) : null;
      view.w = b.w; view.h = b.h;
      if (entry) {
        view.x = direction === "LR" && !chosen.classList.contains("selected") ? 0 : entry.x + entry.w / 2 - b.w / 2;
        view.y = direction === "TB" && !chosen.classList.contains("selected") ? 0 : entry.y + entry.h / 2 - b.h / 2;
      }
      write();
    })();

    // Pan: drag the background.
    var drag = null;
    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || (event.target.closest && event.target.closest("a"))) return;
      stopAnimation();
      var b = box();
      drag = { id: event.pointerId, x: event.clientX, y: event.clientY, vx: view.x, vy: view.y, s: unitsPerPixel(b) };
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("panning");
    });
    svg.addEventListener("pointermove", function (event) {
      if (!drag || event.pointerId !== drag.id) return;
      view.x = drag.vx - (event.clientX - drag.x) * drag.s;
      view.y = drag.vy - (event.clientY - drag.y) * drag.s;
      schedule();
    });
    function endDrag(event) {
      if (!drag || event.pointerId !== drag.id) return;
      drag = null;
      svg.classList.remove("panning");
      if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
    }
    svg.addEventListener("pointerup", endDrag);
    svg.addEventListener("pointercancel", endDrag);

    // Zoom: ctrl/meta + wheel (a plain wheel scrolls the page).
    svg.addEventListener("wheel", function (event) {
      if (!event.ctrlKey && !event.metaKey) return;
      event.preventDefault();
      stopAnimation();
      var delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
      zoom(Math.exp(Math.max(-100, Math.min(100, delta)) * 0.003), event.clientX, event.clientY);
    }, { passive: false });

    root.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button[data-canvas-zoom]") : null;
      if (!button) return;
      var what = button.getAttribute("data-canvas-zoom");
      stopAnimation();
      if (what === "fit") fit();
      else zoom(what === "in" ? 1 / ZOOM_STEP : ZOOM_STEP);
    });

    // htmx boosts HTML links only: a step's SVG link inside a boosted region (the builder
    // opens a step in its side panel) is sent through htmx the same way, with the region's
    // hx-target and hx-push-url. Without htmx, or with a modifier key, it is a plain link.
    svg.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a.node") : null;
      var boosted = link ? link.closest("[hx-boost]") : null;
      if (!link || !window.htmx || !boosted || boosted.getAttribute("hx-boost") !== "true") return;
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      window.htmx.ajax("GET", link.getAttribute("href"), { source: link });
    });

    svg.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      var key = event.key;
      if (key === "+" || key === "=") { zoom(1 / ZOOM_STEP); event.preventDefault(); return; }
      if (key === "-" || key === "_") { zoom(ZOOM_STEP); event.preventDefault(); return; }
      if (key === "0") { fit(); event.preventDefault(); return; }
      if (key.indexOf("Arrow") !== 0) return;
      var link = event.target.closest ? event.target.closest("a.node") : null;
      if (link) {
        var next = neighbour(nodes().of.get(link), key);
        if (next) next.el.focus({ preventScroll: true });
        event.preventDefault();
        return;
      }
      if (event.target !== svg) return;
      stopAnimation();
      var dx = key === "ArrowLeft" ? -1 : key === "ArrowRight" ? 1 : 0;
      var dy = key === "ArrowUp" ? -1 : key === "ArrowDown" ? 1 : 0;
      view.x += dx * view.w * PAN_FRACTION;
      view.y += dy * view.h * PAN_FRACTION;
      schedule();
      event.preventDefault();
    });

    // A step reached by Tab or the arrow keys is brought into view.
    svg.addEventListener("focusin", function (event) {
      var link = event.target.closest ? event.target.closest("a.node") : null;
      var entry = link ? nodes().of.get(link) : null;
      if (entry) reveal(entry);
    });
  }

  function setupAll(scope) {
    var roots = (scope && scope.querySelectorAll ? scope : document).querySelectorAll("[data-builder-canvas]");
    for (var i = 0; i < roots.length; i++) setup(roots[i]);
    if (scope && scope.matches && scope.matches("[data-builder-canvas]")) setup(scope);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setupAll(document); });
  } else {
    setupAll(document);
  }
  document.addEventListener("htmx:load", function (event) { setupAll(event.target); });
})();
