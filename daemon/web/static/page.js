// Keeps the owner's page current: every few seconds, fetch the server-rendered main part and
// swap it in (no templates here; the server renders everything). Forms work without this.
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  function refresh() {
    var main = document.getElementById("main");
    if (!main) return;
    var active = document.activeElement;
    if (active && active.form && main.contains(active)) return; // the owner is typing
    fetch(main.dataset.refresh, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { main.innerHTML = html; document.body.dataset.updated = Date.now(); })
      .catch(function () { document.body.dataset.stale = "1"; });
  }
  setInterval(refresh, PERIOD_MS);
})();
