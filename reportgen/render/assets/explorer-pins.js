/* reportgen graph explorer: the pinned subgraph pane and the view in the link.
   explorer.js calls RG.pins(api) once its graph is drawn. Pinned nodes (Ctrl/⌘-click, P on a
   focused node, or the Pin button of a node's panel) are listed below the graph, grouped into
   labelled supernodes, drawn as the exported figure draws them, and exported (explorer-export.js).

   The whole view lives in the URL fragment, written with history.replaceState (no history
   entry, no scroll) and read when the page opens:
     #graph:pinnedIds=n3-7,n5-7&supernodes=[["label","n3-7","n5-7"]]&clickedId=n5-7
            &edgeThreshold=0.02&layers=0-12&tokens=4-30&zoom=2.5&center=17.2,6.5
   pinnedIds, supernodes ([label, ...ids], JSON) and clickedId are named as in Neuronpedia's and
   circuit-tracer's links; ids are the explorer's n<layer index>-<position>. edgeThreshold hides
   edges with |weight| below it, layers and tokens are inclusive ranges (layer indices, token
   positions), zoom is relative to the opening view and center is (token position, layer index).
   Every value is percent-encoded except , [ ] : so a link stays readable. The "graph:" prefix
   leaves the page's own anchors (#graph, #metrics, #tok-3, ...) alone: a fragment without it
   is not ours, and a page opened without one shows the case file's pinned nodes. */
(function () {
  "use strict";
  var RG = window.reportgenGraph = window.reportgenGraph || {};
  var PREFIX = "#graph:";
  var KEEP = {"%2C": ",", "%5B": "[", "%5D": "]", "%3A": ":"};

  RG.pins = function (api) {
    var G = api.data, html = api.html, iv = G.interventions;
    var $ = function (name) { return document.getElementById(name); };
    var pinned = [], groups = [], ticked = {}, nextUid = 1;
    var written = null, viewTimer = null, labelTimer = null;

    // --- state ------------------------------------------------------------------------------
    function isPinned(k) { return pinned.indexOf(k) >= 0; }
    function groupOf(k) {
      for (var i = 0; i < groups.length; i++) { if (groups[i].members.indexOf(k) >= 0) { return groups[i]; } }
      return null;
    }
    function pins() { return {pinned: pinned.slice(), groups: groups.map(function (g) { return {label: g.label, members: g.members.slice()}; })}; }
    function newLabel() {
      var n = groups.length + 1, taken = {};
      groups.forEach(function (g) { taken[g.label] = true; });
      while (taken["group " + n]) { n += 1; }
      return "group " + n;
    }
    function dropEmpty() { groups = groups.filter(function (g) { return g.members.length > 0; }); }
    function unpin(k) {
      pinned = pinned.filter(function (j) { return j !== k; });
      groups.forEach(function (g) { g.members = g.members.filter(function (j) { return j !== k; }); });
      delete ticked[api.id(k)];
      dropEmpty();
    }
    function togglePin(k) {
      if (isPinned(k)) { unpin(k); } else { pinned.push(k); }
      changed();
      if (api.selected() === k) { api.select(k); }
    }
    function tickedUnits() {
      return {
        groups: groups.filter(function (g) { return ticked["g" + g.uid]; }),
        nodes: pinned.filter(function (k) { return ticked[api.id(k)] && !groupOf(k); })
      };
    }
    function group() {
      var t = tickedUnits(), target;
      if (t.groups.length + t.nodes.length < 2 && !(t.groups.length === 0 && t.nodes.length === 1)) { return; }
      if (t.groups.length) {
        target = t.groups[0];
        t.groups.slice(1).forEach(function (g) { target.members = target.members.concat(g.members); g.members = []; });
        target.members = target.members.concat(t.nodes);
      } else {
        target = {uid: nextUid++, label: newLabel(), members: t.nodes};
        groups.push(target);
      }
      dropEmpty();
      ticked = {};
      changed();
      var input = document.querySelector('#gx-units [data-uid="' + target.uid + '"] input.gx-label-input');
      if (input) { input.focus(); input.select(); }
    }
    function ungroup() {
      groups = groups.filter(function (g) { return !ticked["g" + g.uid]; });
      ticked = {};
      changed();
    }
    function unpinTicked() {
      var t = tickedUnits();
      t.groups.forEach(function (g) { g.members.slice().forEach(unpin); });
      t.nodes.forEach(unpin);
      ticked = {};
      changed();
    }

    // --- the link -----------------------------------------------------------------------------
    function enc(text) {
      return encodeURIComponent(text).replace(/%2C|%5B|%5D|%3A/g, function (m) { return KEEP[m]; });
    }
    function short(v) { return String(Number(v.toPrecision(4))); }
    function fragment() {
      var parts = ["pinnedIds=" + enc(pinned.map(api.id).join(","))];
      if (groups.length) {
        parts.push("supernodes=" + enc(JSON.stringify(groups.map(function (g) { return [g.label].concat(g.members.map(api.id)); }))));
      }
      if (api.selected() !== null) { parts.push("clickedId=" + enc(api.id(api.selected()))); }
      var f = api.filters(), d = api.defaults;
      if (f.threshold > 0) { parts.push("edgeThreshold=" + short(f.threshold)); }
      if (f.layers[0] !== d.layers[0] || f.layers[1] !== d.layers[1]) { parts.push("layers=" + f.layers.join("-")); }
      if (f.tokens[0] !== d.tokens[0] || f.tokens[1] !== d.tokens[1]) { parts.push("tokens=" + f.tokens.join("-")); }
      var v = api.view();
      if (v) { parts.push("zoom=" + short(v.zoom)); parts.push("center=" + v.pos.toFixed(2) + "," + v.layer.toFixed(2)); }
      return PREFIX + parts.join("&");
    }
    function link() { return location.href.split("#")[0] + fragment(); }
    function write() {
      clearTimeout(viewTimer);
      var frag = fragment();
      if (frag === written) { return; }
      written = frag;
      try {
        history.replaceState(history.state, "", frag);
      } catch (err) { /* a sandboxed frame: the view stays, only the address bar does not follow */ }
      api.root.setAttribute("data-view", frag);
    }
    function parse(hash) {
      var out = {};
      hash.slice(PREFIX.length).split("&").forEach(function (part) {
        var eq = part.indexOf("=");
        if (eq <= 0) { return; }
        try { out[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1)); } catch (err) { /* a broken escape: skip */ }
      });
      return out;
    }
    function range(text, lo, hi) {
      var m = /^(-?\d+)-(-?\d+)$/.exec(text || "");
      if (!m) { return [lo, hi]; }
      var a = Math.max(lo, Math.min(hi, parseInt(m[1], 10))), b = Math.max(lo, Math.min(hi, parseInt(m[2], 10)));
      return [Math.min(a, b), Math.max(a, b)];
    }
    function known(ident) { return typeof ident === "string" && api.indexOf.hasOwnProperty(ident) ? api.indexOf[ident] : null; }
    // the view a link names (or, without one, the case file's pinned subgraph)
    function restore(hash) {
      var listen = api.hooks.change;
      api.hooks.change = null; // the steps below must not write a half-restored view
      try { applyLink(hash); } finally { api.hooks.change = listen; }
      if (hash.indexOf(PREFIX) === 0) { written = null; write(); }
    }
    function applyLink(hash) {
      var mine = hash.indexOf(PREFIX) === 0, q = mine ? parse(hash) : {}, d = api.defaults, missing = 0;
      var th = parseFloat(q.edgeThreshold);
      api.setFilters({threshold: th > 0 ? th : 0, layers: range(q.layers, d.layers[0], d.layers[1]),
        tokens: range(q.tokens, d.tokens[0], d.tokens[1])});
      pinned = []; groups = []; ticked = {};
      var ids = mine ? (q.pinnedIds ? q.pinnedIds.split(",") : []) : G.pinned.ids;
      ids.forEach(function (ident) {
        var k = known(ident);
        if (k === null) { missing += ident ? 1 : 0; } else if (!isPinned(k)) { pinned.push(k); }
      });
      var lists = G.pinned.supernodes;
      if (mine) {
        try { lists = q.supernodes ? JSON.parse(q.supernodes) : []; } catch (err) { lists = []; }
      }
      (Array.isArray(lists) ? lists : []).forEach(function (item) {
        if (!Array.isArray(item) || typeof item[0] !== "string") { return; }
        var members = [];
        item.slice(1).forEach(function (ident) {
          var k = known(ident);
          if (k === null) { missing += 1; return; }
          if (groupOf(k) || members.indexOf(k) >= 0) { return; }
          if (!isPinned(k)) { pinned.push(k); }
          members.push(k);
        });
        if (members.length) { groups.push({uid: nextUid++, label: item[0].slice(0, 200) || newLabel(), members: members}); }
      });
      render();
      var clicked = known(q.clickedId);
      if (clicked !== null) { api.select(clicked); } else if (api.selected() !== null) { api.clear(); }
      var z = parseFloat(q.zoom), c = (q.center || "").split(",").map(parseFloat);
      api.setView(z > 0 && c.length === 2 && !isNaN(c[0]) && !isNaN(c[1]) ? {zoom: z, pos: c[0], layer: c[1]} : null);
      clearTimeout(viewTimer);
      note(missing ? (missing > 1 ? missing + " nodes of the link are" : "1 node of the link is") +
        " not drawn in this graph and left out." : "");
    }

    // --- the pane -------------------------------------------------------------------------------
    function note(text) { $("gx-export-note").textContent = text; }
    function ablationText(f) {
      return "f ablated " + api.fmt(f) + ", \u0394f " + api.fmt(iv.f_clean - f);
    }
    function sameSet(a, b) {
      if (a.length !== b.length) { return false; }
      var s = a.slice().sort().join(" "), t = b.slice().sort().join(" ");
      return s === t;
    }
    // the interventions' group (the case file's pinned set or one of its supernodes) with
    // exactly these nodes, if the build ablated it
    function groupEffect(members) {
      if (!iv) { return null; }
      var ids = members.map(api.id);
      for (var i = 0; i < iv.groups.length; i++) { if (sameSet(iv.groups[i].ids, ids)) { return iv.groups[i]; } }
      return null;
    }
    function gotoButton(k) {
      var b = html("button", {type: "button", "class": "gx-goto", "data-node": api.id(k)}, RG.nodeName(G, k));
      b.addEventListener("click", function () { api.select(k); api.focus(k); });
      return b;
    }
    function tick(key, what) {
      var box = html("input", {type: "checkbox", "class": "gx-tick", "aria-label": "tick " + what});
      box.checked = !!ticked[key];
      box.addEventListener("change", function () {
        if (box.checked) { ticked[key] = true; } else { delete ticked[key]; }
        tools();
      });
      return box;
    }
    function unitRow(u) {
      var g = u.label ? groups.filter(function (x) { return x.members.indexOf(u.members[0]) >= 0; })[0] : null;
      var li = html("li", {"class": "gx-unit" + (g ? " gx-unit-group" : "")});
      var head = html("div", {"class": "gx-unit-head"});
      li.appendChild(head);
      if (g) {
        li.setAttribute("data-uid", String(g.uid));
        li.setAttribute("data-members", u.members.map(api.id).join(","));
        head.appendChild(tick("g" + g.uid, "supernode " + g.label));
        var input = html("input", {type: "text", "class": "gx-label-input", maxlength: "200", "aria-label": "label of the supernode", spellcheck: "false"});
        input.value = g.label;
        input.addEventListener("input", function () {
          g.label = input.value;
          clearTimeout(labelTimer);
          labelTimer = setTimeout(function () { figure(); write(); }, 250);
        });
        input.addEventListener("change", function () {
          if (!input.value.trim()) { g.label = ""; g.label = newLabel(); input.value = g.label; }
          clearTimeout(labelTimer);
          var typing = document.activeElement === input; // Enter: keep typing in the new row
          changed();
          var again = typing && document.querySelector('#gx-units [data-uid="' + g.uid + '"] input.gx-label-input');
          if (again) { again.focus(); }
        });
        head.appendChild(input);
      } else {
        var k = u.members[0];
        li.setAttribute("data-node", api.id(k));
        head.appendChild(tick(api.id(k), RG.nodeName(G, k)));
        head.appendChild(gotoButton(k));
        head.appendChild(html("span", {"class": "muted"}, " #" + G.nodes[k][1]));
      }
      head.appendChild(html("span", {"class": "num gx-sum " + api.sign(u.relevance), "data-field": "relevance", "data-value": String(u.relevance)},
        (g ? "\u03a3R " : "R ") + api.fmt(u.relevance)));
      var effect = g ? groupEffect(u.members) : (iv && iv.nodes[api.id(u.members[0])] !== undefined ? {f_ablated: iv.nodes[api.id(u.members[0])]} : null);
      if (effect) {
        head.appendChild(html("span", {"class": "gx-ablation", "data-field": "ablation", "data-f": String(effect.f_ablated)},
          ablationText(effect.f_ablated) + (effect.flips ? " (flips)" : "")));
      }
      var x = html("button", {type: "button", "class": "gx-unpin-one", "aria-label": "unpin " + (g ? "the supernode " + g.label : RG.nodeName(G, u.members[0])), title: "unpin"}, "\u00d7");
      x.addEventListener("click", function () { u.members.forEach(unpin); changed(); });
      head.appendChild(x);
      if (g) {
        var ul = html("ul", {"class": "gx-members"});
        u.members.forEach(function (k) {
          var item = html("li", {"data-node": api.id(k)});
          item.appendChild(gotoButton(k));
          item.appendChild(html("span", {"class": "num " + api.sign(G.nodes[k][2])}, " " + api.fmt(G.nodes[k][2])));
          if (iv && iv.nodes[api.id(k)] !== undefined) { item.appendChild(html("span", {"class": "gx-ablation"}, " \u00b7 " + ablationText(iv.nodes[api.id(k)]))); }
          ul.appendChild(item);
        });
        li.appendChild(ul);
      }
      return li;
    }
    function unitName(u) { return u.label ? u.label : RG.nodeName(G, u.members[0]); }
    // the preview: the exported figure at the text width, or at a column's on a narrow screen
    function figure() {
      var lay = RG.layout(G, pins()), box = $("gx-sub-figure");
      box.textContent = "";
      var width = box.clientWidth && box.clientWidth < 560 ? RG.WIDTHS.column : RG.WIDTHS.text;
      if (pinned.length) { box.appendChild(RG.svgFigure(G, lay, width)); }
      box.setAttribute("data-width", String(width));
      return lay;
    }
    function tools() {
      var t = tickedUnits(), n = t.groups.length + t.nodes.length;
      $("gx-group").disabled = !(n >= 2 || (t.groups.length === 0 && t.nodes.length === 1));
      $("gx-ungroup").disabled = t.groups.length === 0;
      $("gx-unpin").disabled = n === 0;
      $("gx-clear-pins").disabled = pinned.length === 0;
      ["gx-export-json", "gx-export-tex-column", "gx-export-tex-text", "gx-export-toml"].forEach(function (name) { $(name).disabled = pinned.length === 0; });
    }
    function render() {
      pinned.forEach(function (k) { api.nodeEls[k].classList.add("gx-pinned"); });
      api.nodeEls.forEach(function (c, k) { if (!isPinned(k)) { c.classList.remove("gx-pinned"); } });
      $("gx-sub-empty").hidden = pinned.length > 0;
      $("gx-sub-body").hidden = pinned.length === 0;
      var lay = figure();
      $("gx-toml").hidden = true;
      $("gx-sub-count").textContent = pinned.length ? "(" + pinned.length + " node" + (pinned.length > 1 ? "s" : "") +
        (groups.length ? ", " + groups.length + " supernode" + (groups.length > 1 ? "s" : "") : "") + ")" : "";
      var list = $("gx-units");
      list.textContent = "";
      lay.units.forEach(function (u) { list.appendChild(unitRow(u)); });
      var table = $("gx-unit-edges");
      table.textContent = "";
      var rows = lay.edges.slice().sort(function (a, b) { return Math.abs(b[2]) - Math.abs(a[2]); });
      if (!rows.length) {
        table.appendChild(html("caption", {"class": "muted"}, "No drawn edge joins two of them."));
      }
      rows.forEach(function (e) {
        var a = lay.units[e[0]], b = lay.units[e[1]];
        var tr = html("tr", {"class": "gx-unit-edge", "data-source": unitName(a), "data-target": unitName(b), "data-weight": String(e[2])});
        tr.appendChild(html("td", {}, unitName(a)));
        tr.appendChild(html("td", {"class": "muted"}, "\u2192"));
        tr.appendChild(html("td", {}, unitName(b)));
        tr.appendChild(html("td", {"class": "num " + api.sign(e[2])}, api.fmt(e[2])));
        table.appendChild(tr);
      });
      var words = [];
      if (iv) {
        var all = groupEffect(pinned);
        if (all && !all.label) {
          words.push("The build ablated these " + pinned.length + " nodes at once: " + ablationText(all.f_ablated) +
            (all.flips ? ", which flips the prediction." : ", the prediction is kept."));
        }
        words.push("f clean " + api.fmt(iv.f_clean) + " (" + iv.baseline + " ablation). f and \u0394f show where the build " +
          "ablated a node alone (the graph's strongest nodes) or a set the case file pins" +
          (iv.subgraph ? "; the whole pruned graph (" + iv.subgraph.count + " nodes) ablated at once gives f " + api.fmt(iv.subgraph.f_ablated) : "") + ".");
      }
      $("gx-sub-ablation").textContent = words.join(" ");
      tools();
      api.root.setAttribute("data-pinned", pinned.map(api.id).join(","));
    }
    function changed() { render(); write(); }

    // --- exports ------------------------------------------------------------------------------
    function exportJson() {
      var data = RG.exportJson(G, pins(), {clicked: api.selected(), link: link()});
      RG.download(G.case_id + "-subgraph.json", JSON.stringify(data, null, 1) + "\n", "application/json");
      note("Saved " + G.case_id + "-subgraph.json.");
    }
    function exportTex(name) {
      var file = G.case_id + "-subgraph-" + name + ".tex";
      RG.download(file, RG.tikz(G, RG.layout(G, pins()), RG.WIDTHS[name]), "application/x-tex");
      note("Saved " + file + ": pdflatex " + file + " makes its PDF.");
    }
    function copy(text, done) {
      function fallback() {
        var area = html("textarea", {"class": "gx-copy-area", readonly: "readonly"});
        area.value = text;
        document.body.appendChild(area);
        area.select();
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
        area.remove();
        note(ok ? done : "Copying was refused: " + (text.length < 200 ? text : "select the text and copy it."));
      }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { note(done); }, fallback);
      } else { fallback(); }
    }
    $("gx-group").addEventListener("click", group);
    $("gx-ungroup").addEventListener("click", ungroup);
    $("gx-unpin").addEventListener("click", unpinTicked);
    $("gx-clear-pins").addEventListener("click", function () { pinned = []; groups = []; ticked = {}; changed(); });
    $("gx-export-json").addEventListener("click", exportJson);
    $("gx-export-tex-column").addEventListener("click", function () { exportTex("column"); });
    $("gx-export-tex-text").addEventListener("click", function () { exportTex("text"); });
    $("gx-export-toml").addEventListener("click", function () {
      var pre = $("gx-toml"), text = RG.caseLines(G, pins());
      pre.textContent = text;
      pre.hidden = false;
      copy(text, "Copied the case file lines (shown below).");
    });
    $("gx-copy-link").addEventListener("click", function () { write(); copy(link(), "Copied the link to this view."); });

    // --- wiring -----------------------------------------------------------------------------
    api.hooks.pin = togglePin;
    api.hooks.panel = function (k, panel) {
      var b = html("button", {type: "button", "class": "gx-pin", id: "gx-pin", "aria-pressed": isPinned(k) ? "true" : "false"},
        isPinned(k) ? "Unpin" : "Pin to the subgraph");
      b.addEventListener("click", function () { togglePin(k); var again = $("gx-pin"); if (again) { again.focus(); } });
      panel.appendChild(b);
      var g = groupOf(k);
      if (g) { panel.appendChild(html("p", {"class": "muted"}, "in the supernode \u201c" + g.label + "\u201d")); }
      if (iv && iv.nodes[api.id(k)] !== undefined) {
        panel.appendChild(html("p", {"class": "gx-ablation", "data-field": "ablation"}, "Ablated alone: " + ablationText(iv.nodes[api.id(k)]) +
          " (f clean " + api.fmt(iv.f_clean) + ")."));
      }
    };
    api.hooks.change = function (kind) {
      // the opening view fitted again (a resize, full screen) is no reason to write a link
      if (kind === "view" && written === null && !api.view()) { return; }
      if (kind === "view") {
        clearTimeout(viewTimer);
        viewTimer = setTimeout(write, 200);
      } else { write(); }
    };
    var lastWidth = window.innerWidth;
    window.addEventListener("resize", function () {
      if (Math.abs(window.innerWidth - lastWidth) > 40 && pinned.length) { lastWidth = window.innerWidth; figure(); }
    });
    window.addEventListener("hashchange", function () {
      if (location.hash.indexOf(PREFIX) === 0 && location.hash !== written) { restore(location.hash); }
    });
    var opening = location.hash;
    restore(opening);
    if (opening.indexOf(PREFIX) === 0) { api.root.scrollIntoView({block: "start"}); }
  };
})();
