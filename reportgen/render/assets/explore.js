/* reportgen explore: the page's client (fetch the JSON API, show its answers or its error). */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  var chosen = {target: null, contrast: null};  // {id, text} picked from the top-k list
  var errorBox = $("ex-error"), status = $("ex-status");
  // the run's secret: the server answers API calls only with it (other pages cannot read it)
  var secret = document.querySelector("meta[name=reportgen-token]").getAttribute("content");
  function showError(message) { errorBox.textContent = message; errorBox.hidden = false; }
  function clearError() { errorBox.hidden = true; errorBox.textContent = ""; }
  function mode() { return document.querySelector("input[name=ex-mode]:checked").value; }
  function token(role) {
    var value = $("ex-" + role).value;
    if (chosen[role] && chosen[role].text === value) { return chosen[role].id; }
    return value === "" ? null : value;
  }
  function config() {
    var bos = $("ex-bos").value;
    return {
      prompt: $("ex-prompt").value, chat: $("ex-chat").checked, prefix: $("ex-prefix").value,
      bos: bos === "" ? null : bos === "true", target: token("target"),
      contrast: mode() === "max_logit" ? null : token("contrast"), mode: mode()
    };
  }
  function post(url, body) {
    status.textContent = "working\u2026";
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-Reportgen-Token": secret}
    })
      .then(function (response) {
        return response.json().then(function (data) {
          status.textContent = "";
          if (!response.ok) { throw new Error(data.error || ("HTTP " + response.status)); }
          clearError();
          return data;
        });
      }, function (err) { status.textContent = ""; throw err; });
  }
  function fmt(v, digits) { return Number(v).toPrecision(digits); }
  function pick(role, entry) {
    chosen[role] = {id: entry.id, text: entry.text};
    $("ex-" + role).value = entry.text;
  }
  $("ex-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    post("/api/predict", config()).then(function (data) {
      $("ex-prediction").hidden = false;
      $("ex-ntokens").textContent = data.n_tokens + " input tokens.";
      var body = $("ex-topk").querySelector("tbody");
      body.textContent = "";
      data.top_k.forEach(function (entry) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-id", String(entry.id));
        [String(entry.rank), null, fmt(entry.logit, 5), (100 * entry.prob).toFixed(1) + "%"].forEach(function (text, i) {
          var td = document.createElement("td");
          if (i === 1) { var code = document.createElement("code"); code.className = "tok"; code.textContent = entry.display; td.appendChild(code); }
          else { td.textContent = text; if (i > 1) { td.className = "num"; } }
          tr.appendChild(td);
        });
        var actions = document.createElement("td");
        ["target", "contrast"].forEach(function (role) {
          var b = document.createElement("button");
          b.type = "button"; b.textContent = role; b.className = "ex-use-" + role;
          b.addEventListener("click", function () { pick(role, entry); });
          actions.appendChild(b);
        });
        tr.appendChild(actions);
        body.appendChild(tr);
      });
      if (!$("ex-target").value && data.top_k.length) { pick("target", data.top_k[0]); }
    }).catch(function (err) { showError(err.message); });
  });
  // while explaining: the step, its estimate and the time so far, polled from the server
  var progressBox = $("ex-progress"), polling = null;
  function pollProgress() {
    fetch("/api/progress", {credentials: "same-origin", headers: {"X-Reportgen-Token": secret}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (polling !== null && data && data.running) {
          progressBox.textContent = data.line; progressBox.hidden = false;
        }
      }, function () {});
  }
  function startProgress() {
    progressBox.textContent = "starting\u2026"; progressBox.hidden = false;
    polling = window.setInterval(pollProgress, 500);
  }
  function stopProgress() {
    if (polling !== null) { window.clearInterval(polling); polling = null; }
    progressBox.hidden = true; progressBox.textContent = "";
  }
  $("ex-explain").addEventListener("click", function () {
    startProgress();
    post("/api/explain", config()).then(function (data) {
      stopProgress();
      $("ex-result").hidden = false;
      $("ex-summary").textContent = data.objective + " = " + fmt(data.explained, 5) + " over " +
        data.n_tokens + " tokens; " + data.graph_edges + " graph edges" + (data.cached ? " (cached)" : "") + ".";
      $("ex-view").setAttribute("data-key", data.key);
      $("ex-view").src = data.view;
    }).catch(function (err) { stopProgress(); showError(err.message); });
  });
  $("ex-save").addEventListener("click", function () {
    var body = config();
    body.id = $("ex-id").value; body.title = $("ex-title").value;
    body.description = $("ex-description").value;
    post("/api/save", body).then(function (data) {
      $("ex-saved-path").textContent = "Saved " + data.path + (data.cached
        ? " (reportgen build reuses this result: nothing to recompute)" : "");
      $("ex-saved").textContent = data.toml;
      $("ex-saved").hidden = false;
    }).catch(function (err) { showError(err.message); });
  });
})();
