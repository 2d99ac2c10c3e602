/* The result page: "Copy prompt". The button stays hidden without script (CSP: no inline JS). */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy-target"));
        copyText(source ? source.textContent.trim() : "").then(
          function () { button.textContent = "Copied"; button.classList.add("is-done"); },
          function () { button.textContent = "Select and copy the prompt"; }
        ).then(function () {
          window.setTimeout(function () { button.textContent = label; button.classList.remove("is-done"); }, 2000);
        });
      });
    });
  });
})();
