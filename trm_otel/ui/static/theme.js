// Applies the saved theme before the page paints (loaded synchronously in <head>).
(function () {
  "use strict";
  try {
    var saved = window.localStorage.getItem("trmOtel.theme");
    if (saved === "light" || saved === "dark") document.documentElement.dataset.theme = saved;
  } catch (e) { /* storage disabled: the default theme */ }
})();
