/* The create page: prompt counter, strength value, cost on the button, drag-and-drop and paste
   upload with a preview, and a Generate button that shows it is busy and cannot submit twice.
   Everything is delegated from the document, so the fields htmx swaps in keep working.
   No inline scripts (CSP); without this file the page still works as a plain form. */
(function () {
  "use strict";

  function form() { return document.querySelector("[data-create-form]"); }

  function checkedValue(root, name) {
    var input = root.querySelector('input[name="' + name + '"]:checked');
    return input ? input : null;
  }

  function updateCost() {
    var f = form();
    if (!f) return;
    var model = checkedValue(f, "model");
    var price = model ? parseInt(model.getAttribute("data-price"), 10) || 0 : 0;
    var count = checkedValue(f, "num_outputs");
    var n = count ? parseInt(count.value, 10) || 1 : 1;
    var label = f.querySelector("[data-generate-cost]");
    if (label && price) label.textContent = "· " + price * n + " credit" + (price * n === 1 ? "" : "s");
  }

  function updateCounter(textarea) {
    var counter = document.querySelector('[data-counter-for="' + textarea.id + '"]');
    if (!counter) return;
    var count = counter.querySelector("[data-count]");
    if (count) count.textContent = textarea.value.length;
    var limit = parseInt(textarea.getAttribute("maxlength"), 10);
    counter.classList.toggle("is-near", !!limit && textarea.value.length > limit * 0.9);
  }

  function fileInput() { var f = form(); return f ? f.querySelector("[data-file-input]") : null; }

  function showPreview(input) {
    var zone = input.closest("[data-dropzone]");
    if (!zone) return;
    var preview = zone.querySelector("[data-preview]");
    var file = input.files && input.files[0];
    if (!preview) return;
    if (!file) { preview.hidden = true; return; }
    var img = preview.querySelector("[data-preview-img]");
    if (img.src && img.src.indexOf("blob:") === 0) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(file);
    preview.querySelector("[data-preview-name]").textContent = "Using " + (file.name || "pasted picture");
    preview.hidden = false;
    var source = zone.querySelector("[data-source]");
    if (source) source.hidden = true; // the new picture replaces the kept one
    zone.classList.add("is-changing");
    var url = zone.querySelector('input[name="image_url"]');
    if (url) url.value = "";
  }

  function useFiles(files) {
    var input = fileInput();
    if (!input || !files || !files.length) return false;
    var picture = null;
    for (var i = 0; i < files.length; i++) {
      if (/^image\//.test(files[i].type)) { picture = files[i]; break; }
    }
    if (!picture) return false;
    var transfer = new DataTransfer();
    var name = picture.name && picture.name !== "image.png" ? picture.name : "pasted-picture." + (picture.type.split("/")[1] || "png");
    transfer.items.add(new File([picture], name, { type: picture.type }));
    input.files = transfer.files;
    showPreview(input);
    return true;
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.matches("textarea[data-counter]")) updateCounter(target);
    if (target.matches("[data-range]")) {
      var output = document.querySelector('output[for="' + target.id + '"]');
      if (output) output.textContent = Number(target.value).toFixed(2);
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.name === "model" || target.name === "num_outputs") updateCost();
    if (target.matches("[data-file-input]")) showPreview(target);
  });

  // "Change" opens the file picker (it is the file field's label) and shows the upload and link.
  document.addEventListener("click", function (event) {
    var change = event.target.closest && event.target.closest("[data-source-change]");
    if (change) change.closest("[data-dropzone]").classList.add("is-changing");
  });

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("is-dragging");
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("is-dragging");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("is-dragging");
    useFiles(event.dataTransfer && event.dataTransfer.files);
  });

  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data || !data.files || !data.files.length || !fileInput()) return;
    if (useFiles(data.files)) event.preventDefault();
  });

  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (!f.matches("[data-create-form]")) return;
    if (f.getAttribute("data-busy") === "true") { event.preventDefault(); return; }
    f.setAttribute("data-busy", "true");
    var button = f.querySelector("[data-generate]");
    if (button) {
      button.setAttribute("aria-busy", "true");
      button.classList.add("is-busy");
      var label = button.querySelector("[data-generate-label]");
      if (label) label.textContent = "Starting…";
      // Disabled after this tick, so the submit itself still goes out.
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // Back/forward cache: a page restored after a submit must be usable again.
  window.addEventListener("pageshow", function () {
    var f = form();
    if (!f) return;
    f.removeAttribute("data-busy");
    var button = f.querySelector("[data-generate]");
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.classList.remove("is-busy");
      var label = button.querySelector("[data-generate-label]");
      if (label) label.textContent = "Generate";
    }
  });

  document.addEventListener("htmx:afterSwap", function () {
    updateCost();
    var textarea = document.querySelector("textarea[data-counter]");
    if (textarea) updateCounter(textarea);
  });

  document.addEventListener("DOMContentLoaded", function () {
    updateCost();
    var textarea = document.querySelector("textarea[data-counter]");
    if (textarea) updateCounter(textarea);
  });
})();
