/* Gallery: select several cards (shift-click selects a range), delete them, star filter.
   A static file (CSP forbids inline scripts); everything works without it, only less handily. */
(function () {
  "use strict";
  var bar, countEl, lastClicked = null;
  var selected = new Set();

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input[data-select]"));
  }

  function refresh() {
    var n = 0;
    boxes().forEach(function (box) {
      box.checked = selected.has(box.value);
      box.closest(".gallery-card").classList.toggle("is-selected", box.checked);
      if (box.checked) n += 1;
    });
    // Cards deleted elsewhere or not on the page any more do not count.
    if (countEl) countEl.textContent = String(n);
    if (bar) bar.classList.toggle("has-selection", n > 0);
    document.body.classList.toggle("gallery-selecting", n > 0);
  }

  function onClick(event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select]")) return;
    var all = boxes();
    if (event.shiftKey && lastClicked && lastClicked !== box && all.indexOf(lastClicked) !== -1) {
      var from = all.indexOf(lastClicked), to = all.indexOf(box);
      var lo = Math.min(from, to), hi = Math.max(from, to);
      for (var i = lo; i <= hi; i += 1) {
        if (box.checked) selected.add(all[i].value); else selected.delete(all[i].value);
      }
    } else if (box.checked) {
      selected.add(box.value);
    } else {
      selected.delete(box.value);
    }
    lastClicked = box;
    refresh();
  }

  function onSubmit(event) {
    var n = selected.size;
    if (n === 0) { event.preventDefault(); return; }
    var what = n === 1 ? "this generation" : "these " + n + " generations";
    if (!window.confirm("Delete " + what + " for good? Pictures, models and prompts are removed; running jobs are canceled and refunded.")) {
      event.preventDefault();
    }
  }

  function init() {
    bar = document.querySelector("[data-selection-bar]");
    if (!bar) return;
    document.body.classList.add("gallery-js");
    countEl = bar.querySelector("[data-selected-count]");
    document.addEventListener("click", onClick);
    bar.addEventListener("submit", onSubmit);
    bar.querySelector("[data-select-clear]").addEventListener("click", function () {
      selected.clear();
      lastClicked = null;
      refresh();
    });
    boxes().forEach(function (box) { if (box.checked) selected.add(box.value); });
    // New cards (load more) and cards re-rendered by their status poll keep the selection.
    document.body.addEventListener("htmx:afterSettle", refresh);
    var fav = document.querySelector(".gallery-fav-toggle input");
    if (fav) fav.addEventListener("change", function () { fav.form.requestSubmit(); });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
