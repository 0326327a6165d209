// The registry site's only script: the search box (ranked as `nepho cloudlet:search` ranks:
// name, then tags, then summary, then description) and the copy buttons. Every page works
// without it.
(function () {
  "use strict";
  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; });
  }

  function copyFallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = document.getElementById(button.getAttribute("data-copy")).textContent;
      var done = function () {
        button.textContent = "Copied";
        button.setAttribute("data-copied", text);
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      };
      var failed = function () { button.textContent = "Select and copy"; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {
          if (copyFallback(text)) { done(); } else { failed(); }
        });
      } else if (copyFallback(text)) {
        done();
      } else {
        failed();
      }
    });
  });

  var input = document.getElementById("q");
  var results = document.getElementById("results");
  var count = document.getElementById("count");
  var raw = window.NEPHO_SEARCH;
  if (!input || !results || !raw) { return; }
  var SHOWN = 50;
  var initialList = results.innerHTML;
  var initialCount = count.textContent;
  var browse = document.getElementById("browse");

  // Lower-cased once, so a keystroke only compares.
  var items = raw.map(function (r) {
    var name = r[0].toLowerCase();
    var slash = name.lastIndexOf("/");
    return {
      raw: r,
      n: name,
      short: slash >= 0 ? name.slice(slash + 1) : name,
      tags: r[2].map(function (t) { return t.toLowerCase(); }),
      s: r[1].toLowerCase(),
      d: r[3].toLowerCase()
    };
  });

  // The same scores as the CLI (src/registry.rs `score`).
  function score(e, terms) {
    var total = 0;
    for (var i = 0; i < terms.length; i++) {
      var t = terms[i], s = 0, k;
      if (e.n === t || e.short === t) { s = 1000; }
      else if (e.short.lastIndexOf(t, 0) === 0) { s = 700; }
      else if (e.n.indexOf(t) >= 0) { s = 500; }
      else {
        for (k = 0; k < e.tags.length && !s; k++) { if (e.tags[k] === t) { s = 300; } }
        for (k = 0; k < e.tags.length && !s; k++) { if (e.tags[k].indexOf(t) >= 0) { s = 200; } }
        if (!s && e.s.indexOf(t) >= 0) { s = 100; }
        if (!s && e.d.indexOf(t) >= 0) { s = 50; }
        if (!s) { return -1; }
      }
      total += s;
    }
    return total;
  }

  function item(r) {
    var html = '<li><a href="' + esc(r[5]) + '">' + esc(r[0]) + "</a>";
    if (r[4]) { html += ' <span class="ver">' + esc(r[4]) + "</span>"; }
    if (r[1]) { html += "<p>" + esc(r[1]) + "</p>"; }
    if (r[2].length) {
      html += '<p class="tags">';
      for (var i = 0; i < r[2].length; i++) { html += '<span class="tag">' + esc(r[2][i]) + "</span> "; }
      html += "</p>";
    }
    return html + "</li>";
  }

  function search() {
    var started = performance.now();
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) {
      results.innerHTML = initialList;
      count.textContent = initialCount;
      if (browse) { browse.hidden = false; }
    } else {
      // Only the first SHOWN hits are ranked in full: a bounded insertion keeps a keystroke
      // linear in the number of cloudlets (30,000 of them stay well under 50 ms).
      var top = [], total = 0;
      for (var i = 0; i < items.length; i++) {
        var e = items[i], sc = score(e, terms);
        if (sc < 0) { continue; }
        total++;
        var name = e.raw[0];
        if (top.length === SHOWN) {
          var last = top[SHOWN - 1];
          if (sc < last.sc || (sc === last.sc && name >= last.e.raw[0])) { continue; }
          top.pop();
        }
        var k = top.length;
        while (k > 0 && (top[k - 1].sc < sc || (top[k - 1].sc === sc && top[k - 1].e.raw[0] > name))) { k--; }
        top.splice(k, 0, { sc: sc, e: e });
      }
      var html = "";
      for (var j = 0; j < top.length; j++) { html += item(top[j].e.raw); }
      results.innerHTML = html;
      count.textContent = total === 0
        ? "No cloudlet matches \u201c" + input.value.trim() + "\u201d"
        : total + (total === 1 ? " cloudlet matches" : " cloudlets match") +
          (total > SHOWN ? " (first " + SHOWN + " shown)" : "");
      if (browse) { browse.hidden = true; }
    }
    // Read by the browser test and scripts/bench-registry.
    window.nephoLastSearchMs = performance.now() - started;
  }

  input.addEventListener("input", search);
  var q = new URLSearchParams(location.search).get("q");
  if (q) { input.value = q; }
  if (input.value) { search(); }
})();
