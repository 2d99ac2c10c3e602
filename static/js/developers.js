// /developers pages: "Copy" buttons (shown only where the clipboard works). A button names the
// element whose text it copies with data-copy-target.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var target = document.getElementById(button.dataset.copyTarget);
    if (!target || !navigator.clipboard) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(
        function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 2000);
        },
        function () {
          // Clipboard refused (permissions): select the text so Ctrl/Cmd+C works.
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }
      );
    });
  });
})();
