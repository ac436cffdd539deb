// Live progress: polls the campaign's JSON once a second; every value is written as text, never as HTML.
(function () {
  "use strict";
  var url = document.currentScript.getAttribute("data-progress");
  var SVG = "http://www.w3.org/2000/svg";

  function drawChart(perMinute) {
    var svg = document.getElementById("chart");
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var width = 600, height = 120, top = Math.max.apply(null, perMinute.map(function (m) { return m.count; }));
    var bar = width / Math.max(perMinute.length, 1);
    perMinute.forEach(function (m, i) {
      var h = top ? (m.count / top) * (height - 10) : 0;
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * bar));
      rect.setAttribute("y", String(height - h));
      rect.setAttribute("width", String(Math.max(bar - 1, 1)));
      rect.setAttribute("height", String(h));
      var title = document.createElementNS(SVG, "title");
      title.textContent = m.minute + ": " + m.count;
      rect.appendChild(title);
      svg.appendChild(rect);
    });
  }

  function drawFailures(failures) {
    var table = document.getElementById("failures");
    while (table.rows.length > 1) { table.deleteRow(1); }
    failures.forEach(function (f) {
      var row = table.insertRow();
      [f.code, f.reason, String(f.count)].forEach(function (v) { row.insertCell().textContent = v; });
    });
  }

  function update(report) {
    document.getElementById("status").textContent = report.status;
    document.getElementById("pause-reason").textContent = report.pause_reason ? "(" + report.pause_reason + ")" : "";
    document.getElementById("total").textContent = String(report.total);
    Object.keys(report.counts).forEach(function (state) {
      var cell = document.querySelector('td[data-state="' + state + '"]');
      if (cell) { cell.textContent = String(report.counts[state]); }
    });
    drawChart(report.per_minute);
    drawFailures(report.failures);
  }

  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (report) { if (report) { update(report); } })
      .catch(function () {})
      .finally(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
