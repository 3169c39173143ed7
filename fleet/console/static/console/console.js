// Fleet console: the little a server-rendered page needs from script. Every page works
// without it; with it, slow parts load on their own, live parts refresh themselves,
// and countdowns tick. No library, no build step.
"use strict";

(function () {
  // Put fresh HTML in: part by part where both have [data-live-part] (what lies between
  // the parts, such as a filter being typed into, is left alone), else all of it.
  function replace(container, html) {
    var fresh = document.createElement("template");
    fresh.innerHTML = html;
    var parts = fresh.content.querySelectorAll("[data-live-part]");
    if (!parts.length) {
      container.innerHTML = html;
      return;
    }
    parts.forEach(function (part) {
      var target = container.querySelector("[data-live-part=\"" + part.dataset.livePart + "\"]");
      if (target) { target.innerHTML = part.innerHTML; }
    });
  }

  function swap(container, html) {
    // Keep the reader where they were: focus and open <details> survive the refresh.
    var focused = document.activeElement && container.contains(document.activeElement)
      ? document.activeElement.id : "";
    var open = Array.prototype.map.call(container.querySelectorAll("details[open][id]"),
      function (el) { return el.id; });
    replace(container, html);
    open.forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.open = true; }
    });
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
    tick();
  }

  // <div data-fragment="/url">: loaded once, after the page.
  function loadFragments() {
    document.querySelectorAll("[data-fragment]").forEach(function (container) {
      container.setAttribute("aria-busy", "true");
      container.innerHTML = "<p>Loading…</p>";
      fetch(container.dataset.fragment, {headers: {"X-Fragment": "1"}, credentials: "same-origin"})
        .then(function (response) {
          return response.text().then(function (text) {
            return response.ok ? text : "<p class=\"error\" role=\"alert\">Could not load this part (HTTP "
              + response.status + ").</p>";
          });
        })
        .catch(function () { return "<p class=\"error\" role=\"alert\">Could not load this part.</p>"; })
        .then(function (html) {
          swap(container, html);
          container.removeAttribute("aria-busy");
        });
    });
  }

  // <div data-live-src="/url" data-live-ms="1500">: refreshed until the server says it is final.
  function live(container) {
    var etag = "";
    var delay = parseInt(container.dataset.liveMs || "1500", 10);
    var status = document.getElementById("live-status");
    var announced = "";
    function announce() {
      var heading = container.querySelector("[data-announce]");
      var text = heading ? heading.dataset.announce : "";
      if (status && text && text !== announced) {
        if (announced) { status.textContent = text; }
        announced = text;
      }
    }
    function poll() {
      if (document.hidden) {
        setTimeout(poll, delay);
        return;
      }
      var headers = {"X-Fragment": "1"};
      if (etag) { headers["If-None-Match"] = etag; }
      fetch(container.dataset.liveSrc, {headers: headers, credentials: "same-origin", cache: "no-store"})
        .then(function (response) {
          var final = response.headers.get("X-Live-Final") === "1";
          if (response.status === 304) { return {final: final}; }
          if (!response.ok) { return {final: false}; }
          etag = response.headers.get("ETag") || "";
          return response.text().then(function (html) { return {final: final, html: html}; });
        })
        .catch(function () { return {final: false}; })
        .then(function (result) {
          if (result.html !== undefined) {
            swap(container, result.html);
            announce();
          }
          if (!result.final) { setTimeout(poll, delay); }
          else { container.dataset.liveDone = "1"; }
        });
    }
    announce();
    setTimeout(poll, delay);
  }

  // <span data-countdown="ISO time">: seconds left, ticking between refreshes.
  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.dataset.countdown) - Date.now()) / 1000));
      el.textContent = left > 0 ? left + " s left" : "done, moving on";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var first = document.querySelector("[data-focus-on-load]");  // the answer to what was just asked
    if (first) { first.focus(); }
    loadFragments();
    document.querySelectorAll("[data-live-src]").forEach(live);
    tick();
    setInterval(tick, 1000);
  });
})();
