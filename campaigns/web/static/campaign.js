// Live progress: polls the campaign's JSON once a second; every value is written as text, never as HTML.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-progress");
  var pagePath = script.getAttribute("data-page");
  var SVG = "http://www.w3.org/2000/svg";
  // The chart's drawing box, in SVG user units (the viewBox): plot area inside the margins.
  var WIDTH = 720, HEIGHT = 200, LEFT = 68, RIGHT = 16, TOP = 20, BOTTOM = 28;
  var MIN_SLOTS = 10; // a campaign of a few minutes still gets bars of a sensible width
  var COUNTED_BARS = 15; // up to this many bars, each shows its count above it
  var LABEL_SPACING = 56; // least distance between two time labels' centres
  var NICE_STEPS = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
  var TICK_MINUTES = [1, 2, 5, 10, 15, 20, 30];

  // A refused action answers from its POST address: show the campaign's own address, so reload is a GET.
  if (pagePath && window.location.pathname !== pagePath) {
    window.history.replaceState(null, "", pagePath);
  }

  function number(n) { return n.toLocaleString("en"); }

  function axisNumber(n) { return n >= 10000 ? number(n / 1000) + "k" : number(n); } // fits the y axis' margin

  function clock(minute) { return minute.slice(11, 16); } // "YYYY-MM-DDTHH:MM" (UTC) -> "HH:MM"

  function niceCeiling(n) {
    if (n <= 1) { return 1; }
    var power = Math.pow(10, Math.floor(Math.log10(n)));
    for (var i = 0; i < NICE_STEPS.length; i++) {
      if (NICE_STEPS[i] * power >= n) { return NICE_STEPS[i] * power; }
    }
    return 10 * power;
  }

  function svgElement(name, attributes, text) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { element.setAttribute(key, String(attributes[key])); });
    if (text !== undefined) { element.textContent = text; }
    return element;
  }

  function label(x, y, text, anchor, extraClass) {
    return svgElement("text", { x: x, y: y, "text-anchor": anchor, "class": "label " + (extraClass || "") }, text);
  }

  function summarise(minutes, clipped) {
    var total = 0, peak = minutes[0];
    minutes.forEach(function (m) { total += m.count; if (m.count > peak.count) { peak = m; } });
    if (!total) { return "No message accepted by the gateway in this time."; }
    var first = clock(minutes[0].minute), last = clock(minutes[minutes.length - 1].minute);
    var span = first === last ? first + " UTC" : first + " to " + last + " UTC";
    return (clipped ? "The campaign's last " + minutes.length + " minutes, " : "") + span + ": " + number(total) +
      " accepted, at most " + number(peak.count) + " in a minute (" + clock(peak.minute) + ").";
  }

  function drawChart(chart) {
    var svg = document.getElementById("chart");
    var minutes = chart.minutes;
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    if (!minutes.length) { return; }
    var plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM, bottom = TOP + plotHeight;
    var top = niceCeiling(Math.max.apply(null, minutes.map(function (m) { return m.count; })));
    var slot = plotWidth / Math.max(minutes.length, MIN_SLOTS);
    var gap = Math.min(slot * 0.2, 8);

    [top, top / 2].forEach(function (value) {
      var y = bottom - (value / top) * plotHeight;
      svg.appendChild(svgElement("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y, y2: y, "class": "grid" }));
    });
    svg.appendChild(label(LEFT - 6, TOP + 4, axisNumber(top) + "/min", "end"));
    if (top % 2 === 0) { svg.appendChild(label(LEFT - 6, TOP + plotHeight / 2 + 4, axisNumber(top / 2), "end")); }
    svg.appendChild(label(LEFT - 6, bottom + 4, "0", "end"));

    minutes.forEach(function (m, i) {
      var h = (m.count / top) * plotHeight, x = LEFT + i * slot + gap / 2, width = Math.max(slot - gap, 1);
      var bar = svgElement("rect", { x: x, y: bottom - h, width: width, height: h, "class": "bar" });
      bar.appendChild(svgElement("title", {}, clock(m.minute) + " UTC: " + number(m.count) + " accepted"));
      svg.appendChild(bar);
      if (m.count && minutes.length <= COUNTED_BARS) {
        svg.appendChild(label(x + width / 2, bottom - h - 4, number(m.count), "middle", "count"));
      }
    });
    svg.appendChild(svgElement("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: bottom, y2: bottom, "class": "axis" }));
    drawTimeLabels(svg, minutes, slot, gap, bottom + 18);
    var summary = summarise(minutes, chart.clipped);
    svg.setAttribute("aria-label", "Messages accepted by the gateway per minute. " + summary);
    document.getElementById("chart-summary").textContent = summary;
    drawChartTable(minutes);
  }

  // The first and last minutes under their bars (at the bars' outer ends when bars are narrow); between them,
  // round minutes far enough apart. Widths are estimates for the 12px label font.
  function drawTimeLabels(svg, minutes, slot, gap, y) {
    var last = minutes.length - 1, clockWidth = 34, utcWidth = 62;
    var centre = function (i) { return LEFT + (i + 0.5) * slot; };
    var firstText = clock(minutes[0].minute) + (last ? "" : " UTC");
    var firstWide = slot >= (last ? clockWidth : utcWidth) + gap;
    var firstRight = firstWide ? centre(0) + clockWidth / 2 : LEFT + gap / 2 + clockWidth;
    svg.appendChild(label(firstWide ? centre(0) : LEFT + gap / 2, y, firstText, firstWide ? "middle" : "start",
      "start-time"));
    if (!last) { return; }
    var end = LEFT + (last + 1) * slot - gap / 2;
    var lastWide = slot >= (clockWidth + utcWidth) / 2 + 8 && centre(last) + utcWidth / 2 <= WIDTH - RIGHT;
    var lastLeft = lastWide ? centre(last) - utcWidth / 2 : end - utcWidth;
    svg.appendChild(label(lastWide ? centre(last) : end, y, clock(minutes[last].minute) + " UTC",
      lastWide ? "middle" : "end", "end-time"));
    var every = TICK_MINUTES.filter(function (n) { return n * slot >= LABEL_SPACING; })[0] || 60;
    minutes.forEach(function (m, i) {
      var x = centre(i), round = Number(m.minute.slice(14, 16)) % every === 0;
      if (round && x - firstRight >= LABEL_SPACING - clockWidth / 2 && lastLeft - x >= LABEL_SPACING - clockWidth / 2) {
        svg.appendChild(label(x, y, clock(m.minute), "middle", "time"));
      }
    });
  }

  function drawChartTable(minutes) {
    var table = document.getElementById("chart-table");
    while (table.rows.length > 1) { table.deleteRow(1); }
    minutes.forEach(function (m) {
      var row = table.insertRow();
      row.insertCell().textContent = m.minute.replace("T", " ");
      row.insertCell().textContent = String(m.count);
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

  // The same words as the page's duration filter (campaigns/web/rendering.py).
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60); seconds = seconds % 60;
    if (minutes < 60) { return seconds ? minutes + " min " + seconds + " s" : minutes + " min"; }
    var hours = Math.floor(minutes / 60); minutes = minutes % 60;
    return minutes ? hours + " h " + minutes + " min" : hours + " h";
  }

  function showProgress(progress, status) {
    var bar = document.getElementById("progress");
    bar.max = progress.to_send;
    bar.value = progress.done;
    bar.textContent = progress.percent + "%";
    document.getElementById("progress-text").textContent =
      progress.done + " of " + progress.to_send + " sent or settled (" + progress.percent + "%)";
    document.getElementById("eta").textContent = progress.eta_seconds !== null ?
      "done in about " + duration(progress.eta_seconds) :
      (status === "running" ? "finishing time not known" : status);
    progress.funnel.forEach(function (stage) {
      var row = document.querySelector('#funnel tr[data-stage="' + stage.stage + '"]');
      if (!row) { return; }
      row.cells[1].textContent = String(stage.count);
      row.cells[2].textContent = (stage.share * 100).toFixed(1) + "%";
    });
  }

  function showAccounts(accounts) {
    var table = document.getElementById("accounts");
    if (!table) { return; }
    var states = Array.prototype.map.call(table.rows[0].cells, function (cell) { return cell.textContent; }).slice(1);
    Object.keys(accounts).sort().forEach(function (account) {
      var row = table.querySelector('tr[data-account="' + CSS.escape(account) + '"]');
      if (!row) {  // a fallback the campaign went on through since the page was drawn
        row = table.insertRow(-1);
        row.setAttribute("data-account", account);
        var name = document.createElement("th");
        name.textContent = account;
        row.appendChild(name);
        states.forEach(function (state) { row.insertCell(-1).setAttribute("data-account-state", state); });
      }
      states.forEach(function (state) {
        var cell = row.querySelector('td[data-account-state="' + state + '"]');
        if (cell) { cell.textContent = String(accounts[account][state] || 0); }
      });
    });
  }

  function showActions(actions) {
    document.querySelectorAll("form[data-action]").forEach(function (form) {
      form.hidden = actions.indexOf(form.getAttribute("data-action")) < 0;
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
    if (report.accounts) { showAccounts(report.accounts); }
    if (report.actions) { showActions(report.actions); }
    if (report.progress) { showProgress(report.progress, report.status); }
    drawChart(report.chart || { minutes: report.per_minute, clipped: false });
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
