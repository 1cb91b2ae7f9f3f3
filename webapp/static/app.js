/* Progressive enhancement only: every page works without it. */
(function () {
  "use strict";
  // Disable a submit button after the first click (no double submits on slow networks).
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[data-once]");
    if (button) {
      if (button.dataset.sent) { event.preventDefault(); return; }
      button.dataset.sent = "1";
      setTimeout(function () { button.disabled = true; button.textContent = "Đang gửi…"; }, 0);
    }
  });
  // Focus the error summary so screen readers and keyboards land on it.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }

  // The dossier's own BPMN, with finished, current and late steps marked.
  window.addEventListener("load", function () {
    if (!window.BpmnJS) { return; }
    document.querySelectorAll(".bpmn-diagram").forEach(showDiagram);
  });

  function showDiagram(host) {
    var markers = JSON.parse(host.dataset.markers || "{}");
    var viewer = new window.BpmnJS({ container: host });
    fetch(host.dataset.xml, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        Object.keys(markers).forEach(function (kind) {
          (markers[kind] || []).forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, kind); } });
        });
        canvas.zoom("fit-viewport");
        host.dataset.ready = "1";
      })
      .catch(function (err) { host.textContent = "Không hiển thị được sơ đồ: " + err.message; });
  }
})();
