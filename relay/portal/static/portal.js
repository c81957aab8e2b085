// hookrelay portal: small progressive enhancements. Every page works
// without this script.
(function () {
  "use strict";

  // Forms marked data-inplace="ID" are sent in the background and the
  // element ID is replaced by the fragment the server answers (the Test
  // button's result).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var target = form.getAttribute && form.getAttribute("data-inplace");
    if (!target || !window.fetch) return;
    var out = document.getElementById(target);
    if (!out) return;
    ev.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    out.textContent = "Sending…";
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Portal-Fragment": form.getAttribute("data-fragment") || "1" },
      credentials: "same-origin"
    }).then(function (resp) {
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.text();
    }).then(function (html) {
      out.innerHTML = html; // server-rendered, escaped by html/template
    }).catch(function (err) {
      out.textContent = "The request failed (" + err.message + "). Reload the page and try again.";
    }).finally(function () {
      if (button) { button.disabled = false; button.removeAttribute("aria-busy"); }
    });
  });

  // Buttons with data-copy="ID" copy the text of element ID.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("[data-copy]");
    if (!b || !navigator.clipboard) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el) return;
    navigator.clipboard.writeText(el.textContent.trim()).then(function () {
      b.textContent = "Copied";
    });
  });
})();
