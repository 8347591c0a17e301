// Loaded as a classic script in the head of every page with a form, before the page's
// module. Until the document has loaded (module scripts have then run and attached their
// handlers) forms are held back: a quick click would otherwise make the browser send the
// form natively, with what was typed (a password) in the page's address. While
// <html data-loading> is set, caucus.css makes form buttons ignore the pointer, and a
// submission by the keyboard is stopped here.
(function () {
  "use strict";
  var root = document.documentElement;
  root.setAttribute("data-loading", "");
  document.addEventListener("DOMContentLoaded", function () {
    root.removeAttribute("data-loading");
  });
  document.addEventListener(
    "submit",
    function (event) {
      if (root.hasAttribute("data-loading")) {
        event.preventDefault();
      }
    },
    true,
  );
})();
