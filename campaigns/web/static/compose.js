// The compose page as you type: previews the first recipients' texts (300 ms after the last key), shows
// only the extras the chosen account's gateway offers, and keeps the launch, test-send and schedule forms'
// copies of the compose fields current. Every value is written as text, never as HTML. Without this
// script the page works by its Preview button.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-preview");
  var features = JSON.parse(script.getAttribute("data-features") || "{}");
  var hasReport = script.getAttribute("data-has-report") === "1";
  var form = document.getElementById("compose");
  var area = document.getElementById("preview-area");
  var csrfInput = document.querySelector('input[name="csrf_token"]');
  var DEBOUNCE_MS = 300;
  var timer = null;
  var latest = 0;

  function field(name) { return form.elements.namedItem(name); }

  function value(name) {
    var input = field(name);
    return input && !input.disabled ? input.value : "";
  }

  function offered() {
    var account = features[value("account")];
    return account ? account.kinds : ["text"];
  }

  function showExtras() {
    var kinds = offered();
    var select = field("kind");
    var chosen = select.value;
    while (select.options.length) { select.remove(0); }
    kinds.forEach(function (k) { select.add(new Option(k, k, false, k === chosen)); });
    if (kinds.indexOf(chosen) < 0) { select.value = "text"; }
    var kind = select.value;
    form.querySelectorAll(".extra").forEach(function (box) {
      var wanted = box.getAttribute("data-extra").split(" ");
      var shown = wanted.indexOf("media") >= 0 ? kinds.indexOf("media") >= 0 : wanted.indexOf(kind) >= 0;
      box.hidden = !shown;
      box.querySelectorAll("input, textarea").forEach(function (input) { input.disabled = !shown; });
    });
  }

  function mirror() {
    document.querySelectorAll("input.mirror").forEach(function (copy) { copy.value = value(copy.name); });
    var launch = document.getElementById("launch");
    if (launch) { launch.disabled = !(hasReport && value("template")); }
  }

  function cell(row, text) { row.insertCell().textContent = text; }

  function draw(answer) {
    while (area.firstChild) { area.removeChild(area.firstChild); }
    var problem = answer.error || answer.problem;
    if (problem) {
      var p = document.createElement("p");
      p.className = "error";
      p.textContent = problem;
      area.appendChild(p);
    }
    var previews = answer.previews || [];
    if (!previews.length) { return; }
    var title = document.createElement("h2");
    title.textContent = "First recipients";
    area.appendChild(title);
    var table = document.createElement("table");
    var head = table.insertRow();
    ["phone", "text", "length"].forEach(function (h) {
      var th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    });
    previews.forEach(function (p) {
      var row = table.insertRow();
      cell(row, p.phone);
      var text = row.insertCell();
      if (p.text !== null) {
        var pre = document.createElement("pre");
        pre.textContent = p.text;
        text.appendChild(pre);
      }
      if (p.skip_reason) {
        var reason = document.createElement("span");
        reason.className = "error";
        reason.textContent = p.skip_reason;
        text.appendChild(reason);
      }
      cell(row, p.length + " / " + p.limit + " " + p.unit);
    });
    area.appendChild(table);
  }

  function preview() {
    var body = new URLSearchParams();
    ["template", "account", "region", "phone_column", "kind", "media_url", "buttons", "footer", "list_header",
     "list_button", "list_rows"].forEach(function (name) { body.append(name, value(name)); });
    body.append("csrf_token", csrfInput ? csrfInput.value : "");
    var ticket = ++latest;
    fetch(url, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) {
        var json = (r.headers.get("content-type") || "").indexOf("json") >= 0;
        return json ? r.json() : { error: "preview refused (HTTP " + r.status + "); reload the page" };
      })
      .then(function (answer) { if (ticket === latest) { draw(answer); } })
      .catch(function () {});
  }

  function changed(event) {
    if (event.target.name === "account" || event.target.name === "kind") { showExtras(); }
    mirror();
    clearTimeout(timer);
    timer = setTimeout(preview, DEBOUNCE_MS);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  showExtras();
  mirror();
})();
