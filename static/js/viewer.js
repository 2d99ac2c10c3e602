/* The signed 3D viewer page: say so when the model cannot be loaded (an expired storage link, a
   network failure) instead of leaving an empty box. No inline script (CSP). */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var viewer = document.querySelector("[data-viewer]");
    var message = document.querySelector("[data-viewer-error]");
    if (!viewer || !message) return;
    viewer.addEventListener("error", function () {
      message.hidden = false;
    });
    viewer.addEventListener("load", function () {
      message.hidden = true;
    });
  });
})();
