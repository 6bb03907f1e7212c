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
      showProbePanel(data);
    }).catch(function (err) { stopProgress(); showError(err.message); });
  });
  // --- 4. a hypothesis tested live: ablate nodes, mask tokens; f, top-k, continuation -----
  var probeLayers = [], masked = {};
  function chip(parent, text, title) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.title = title;
    parent.appendChild(b);
    return b;
  }
  function typedNodes() {
    return $("ex-ablate").value.split(/[\s,;]+/).filter(function (s) { return s !== ""; });
  }
  function addNode(text) {
    var have = typedNodes();
    if (have.indexOf(text) < 0) { have.push(text); }
    $("ex-ablate").value = have.join(", ");
  }
  function showProbePanel(data) {
    probeLayers = data.layers || []; masked = {};
    var nodes = $("ex-nodes"), tokens = $("ex-tokens");
    nodes.textContent = ""; tokens.textContent = "";
    (data.nodes || []).forEach(function (n) {
      var b = chip(nodes, n.layer + ":" + n.position + " \u00b7 " + n.token,
        "relevance " + fmt(n.relevance, 3) + " (click to ablate)");
      b.setAttribute("data-node", n.layer + ":" + n.position);
      b.addEventListener("click", function () { addNode(n.layer + ":" + n.position); });
    });
    (data.tokens || []).forEach(function (text, i) {
      var b = chip(tokens, text, "position " + i);
      b.setAttribute("data-position", String(i));
      b.setAttribute("aria-pressed", "false");
      if (data.special[i]) { b.disabled = true; b.title += " (special token: never masked)"; return; }
      b.addEventListener("click", function () {
        if (masked[i]) { delete masked[i]; } else { masked[i] = true; }
        b.setAttribute("aria-pressed", masked[i] ? "true" : "false");
      });
    });
    $("ex-probe-result").hidden = true;
  }
  // the dossier's graph explorer keeps its view in the URL fragment, "#graph:pinnedIds=n0-12,
  // n4-12&supernodes=[["label","n0-10",...]]&..." (docs/reference.md); the dossier is served
  // from this origin, so its fragment is readable
  function dossierView() {
    var none = {pinned: [], supernodes: []}, hash = "";
    try { hash = $("ex-view").contentWindow.location.hash || ""; } catch (e) { return none; }
    var text = hash.replace(/^#/, "");
    if (text.indexOf("graph:") !== 0) { return none; }  // not the explorer's fragment
    var params = new URLSearchParams(text.slice("graph:".length));
    var pinned = (params.get("pinnedIds") || "").split(",").filter(function (id) { return id !== ""; });
    var groups = [];
    try { groups = JSON.parse(params.get("supernodes") || "[]"); } catch (e) { groups = []; }
    groups = (Array.isArray(groups) ? groups : []).filter(function (g) { return Array.isArray(g) && g.length > 1; });
    return {pinned: pinned, supernodes: groups};
  }
  function typedId(id) {  // "n3-5" -> "2:5" (the layer index counts the graph's layers)
    var m = /^n(\d+)-(\d+)$/.exec(id);
    return m && probeLayers[+m[1]] !== undefined ? probeLayers[+m[1]] + ":" + m[2] : id;
  }
  $("ex-use-pinned").addEventListener("click", function () {
    var view = dossierView(), skipped = 0;
    if (!view.pinned.length) { showError("pin nodes in the dossier's graph first (Ctrl/\u2318-click a node)"); return; }
    var nodes = view.pinned.map(typedId).filter(function (t) {
      if (/\.mid:/.test(t)) { skipped += 1; return false; }  // a mid-block state has no hook
      return true;
    });
    $("ex-ablate").value = nodes.join(", ");
    status.textContent = nodes.length + " pinned nodes" + (skipped ? " (" + skipped + " mid-block states left out: they cannot be ablated)" : "");
  });
  $("ex-clear").addEventListener("click", function () {
    $("ex-ablate").value = ""; masked = {};
    Array.prototype.forEach.call($("ex-tokens").querySelectorAll("button"), function (b) {
      b.setAttribute("aria-pressed", "false");
    });
  });
  function topList(cell, run, other) {
    cell.textContent = "";
    var ol = document.createElement("ol"), before = {};
    other.top_k.forEach(function (t, rank) { before[t.id] = rank; });
    run.top_k.forEach(function (t, rank) {
      var li = document.createElement("li"), code = document.createElement("code");
      code.className = "tok"; code.textContent = t.display;
      li.appendChild(code);
      li.appendChild(document.createTextNode(" " + (100 * t.prob).toFixed(1) + "% \u00b7 logit " + fmt(t.logit, 4)));
      if (before[t.id] !== rank) { li.className = "ex-moved"; li.title = before[t.id] === undefined ? "not in the other top-k" : "rank " + (before[t.id] + 1) + " in the other run"; }
      ol.appendChild(li);
    });
    cell.appendChild(ol);
  }
  $("ex-run").addEventListener("click", function () {
    var body = config();
    body.ablate = typedNodes(); body.baseline = $("ex-baseline").value;
    body.mask = Object.keys(masked).map(Number).sort(function (a, b) { return a - b; });
    body.fill = $("ex-fill").value; body.tokens = Number($("ex-cont-tokens").value);
    post("/api/intervene", body).then(function (data) {
      $("ex-probe-result").hidden = false;
      $("ex-f-clean").textContent = fmt(data.clean.f, 6);
      $("ex-f-after").textContent = fmt(data.after.f, 6);
      var given = data.intervention;
      $("ex-probe-summary").textContent = given.ablate.length + " nodes ablated (" + given.baseline + "), " +
        given.mask.length + " tokens masked (" + given.fill + "): \u0394f = " + fmt(data.delta_f, 4) +
        (data.flips ? "; the model no longer prefers the target." : ".");
      topList($("ex-top-clean"), data.clean, data.after);
      topList($("ex-top-after"), data.after, data.clean);
      $("ex-cont-clean").textContent = data.clean.text === null ? "(this model does not generate)" : data.clean.text;
      $("ex-cont-after").textContent = data.after.text === null ? "(this model does not generate)" : data.after.text;
    }).catch(function (err) { showError(err.message); });
  });
  $("ex-save").addEventListener("click", function () {
    var body = config(), view = dossierView();
    body.id = $("ex-id").value; body.title = $("ex-title").value;
    body.description = $("ex-description").value;
    if (view.pinned.length || view.supernodes.length) { body.pinned = view.pinned; body.supernodes = view.supernodes; }
    post("/api/save", body).then(function (data) {
      $("ex-saved-path").textContent = "Saved " + data.path + (data.cached
        ? " (reportgen build reuses this result: nothing to recompute)" : "") +
        (view.pinned.length ? " with " + view.pinned.length + " pinned nodes and " + view.supernodes.length + " groups" : "");
      $("ex-saved").textContent = data.toml;
      $("ex-saved").hidden = false;
    }).catch(function (err) { showError(err.message); });
  });
})();
