/* reportgen graph explorer: the dossier's attribution graph as an interactive SVG.
   Reads the JSON block #graph-explorer-data (see reportgen/render/explorer.py):
   layers, columns (token positions drawn), labels, nodes [layer index, position, R],
   edges [source node, target node, weight], output (node index), neurons, max_weight.
   Offline and dependency-free. Loaded after explorer-export.js and explorer-pins.js: at the end
   it hands its API (below) to the pinned-subgraph pane, which restores the view of the link
   (the URL fragment) before the figure says data-ready. */
(function () {
  "use strict";
  var root = document.getElementById("graph-explorer");
  var dataEl = document.getElementById("graph-explorer-data");
  if (!root || !dataEl) { return; }
  var G = JSON.parse(dataEl.textContent);
  // what the pinned-subgraph pane listens to: pin (a node to pin or unpin), panel (a selected
  // node's panel to add to), change (the view changed: "select", "filter" or "view")
  var hooks = {};
  function notify(kind) { if (hooks.change) { hooks.change(kind); } }
  // token and layer labels keep this size on screen at every zoom (and full screen)
  var LABEL_PX = 12, CHAR_PX = 0.62 * LABEL_PX, PAD = 12, TURNED_CHARS = 10;
  var widest = 1;
  G.layers.forEach(function (name) { widest = Math.max(widest, name.length); });
  var PAD_LEFT = Math.max(40, widest * 0.6 * LABEL_PX + 20);
  var SVGNS = "http://www.w3.org/2000/svg";
  var nNodes = G.nodes.length, nEdges = G.edges.length, nLayers = G.layers.length;
  var DX = 26, DY = Math.max(16, Math.min(30, Math.round(720 / nLayers)));
  var LEFT = 70, TOP = 20, BOTTOM = 70, TOP_K = 10, MAX_COLS = 48;
  var colOf = {};
  G.columns.forEach(function (pos, c) { colOf[pos] = c; });
  var width = LEFT + G.columns.length * DX + 20;
  var height = TOP + nLayers * DY + BOTTOM;

  function id(i) { return "n" + G.nodes[i][0] + "-" + G.nodes[i][1]; }
  function nx(i) { return LEFT + colOf[G.nodes[i][1]] * DX + DX / 2; }
  function ny(i) { return TOP + (nLayers - 1 - G.nodes[i][0]) * DY + DY / 2; }
  function label(i) { return G.labels[colOf[G.nodes[i][1]]]; }
  function fmt(v) {
    if (v === 0) { return "0"; }
    var a = Math.abs(v);
    var s = a >= 1e-3 && a < 1e4 ? String(Number(v.toPrecision(4))) : v.toExponential(3);
    return (v > 0 ? "+" : "") + s;
  }
  function sign(v) { return v > 0 ? "pos" : (v < 0 ? "neg" : "zero"); }
  function el(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function html(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  // adjacency
  var inE = [], outE = [], i;
  for (i = 0; i < nNodes; i++) { inE.push([]); outE.push([]); }
  G.edges.forEach(function (e, k) { outE[e[0]].push(k); inE[e[1]].push(k); });
  var maxR = 0;
  G.nodes.forEach(function (n) { maxR = Math.max(maxR, Math.abs(n[2])); });
  var maxW = G.max_weight || 1;

  // drawing
  var canvas = document.getElementById("gx-canvas");
  var svg = el("svg", {viewBox: "0 0 " + width + " " + height, role: "img",
    "aria-label": "Attribution graph: " + nNodes + " nodes, " + nEdges + " edges"});
  canvas.appendChild(svg);
  var gEdges = el("g", {}, svg), gNodes = el("g", {}, svg), gLabels = el("g", {"class": "gx-labels"}, svg);
  // labels are drawn over the graph (with a white halo) and stick to the left and bottom edges
  // of the view, so a zoomed or panned graph keeps its axes; relabel() sizes and places them
  // white strips behind the labels, so a node or edge that is panned under them does not
  // blot them out
  var backLeft = el("rect", {"class": "gx-label-back"}, gLabels);
  var backBottom = el("rect", {"class": "gx-label-back"}, gLabels);
  var layerEls = G.layers.map(function (name, li) {
    var t = el("text", {"class": "gx-layer-label", "dominant-baseline": "central"}, gLabels);
    t.textContent = name;
    return t;
  });
  var every = Math.max(1, Math.ceil(G.columns.length / 300));
  var tokenEls = [];
  G.columns.forEach(function (pos, c) {
    if (c % every) { return; }
    var t = el("text", {"class": "gx-label"}, gLabels);
    var tip = el("title", {}, t);
    tip.textContent = "#" + pos + " " + G.labels[c];
    tokenEls.push({el: t, col: c, text: G.labels[c], span: null});
  });
  var longest = 1;
  G.labels.forEach(function (text) { longest = Math.max(longest, Math.min(14, text.length)); });
  function short(text, chars) {
    if (text.length <= chars) { return text; }
    return chars <= 1 ? "\u2026" : text.slice(0, chars - 1) + "\u2026";
  }
  var edgeEls = G.edges.map(function (e, k) {
    var w = e[2];
    var line = el("line", {x1: nx(e[0]), y1: ny(e[0]), x2: nx(e[1]), y2: ny(e[1]),
      "class": "gx-edge " + sign(w), "stroke-width": (0.4 + 5 * Math.abs(w) / maxW).toFixed(2),
      "vector-effect": "non-scaling-stroke", "data-source": id(e[0]), "data-target": id(e[1]),
      "data-weight": String(w)}, gEdges);
    return line;
  });
  var nodeEls = G.nodes.map(function (n, k) {
    var r = 2.5 + 9 * Math.sqrt(maxR ? Math.abs(n[2]) / maxR : 0);
    var c = el("circle", {cx: nx(k), cy: ny(k), r: r.toFixed(2), id: "gx-" + id(k),
      "class": "gx-node " + sign(n[2]) + (k === G.output ? " output" : ""), tabindex: "0",
      role: "button", "data-node": id(k),
      "aria-label": "token " + label(k) + " (position " + n[1] + "), layer " + G.layers[n[0]] +
        ", relevance " + fmt(n[2]) + (k === G.output ? ", output node" : "")}, gNodes);
    var tip = el("title", {}, c);
    tip.textContent = "#" + n[1] + " " + label(k) + " \u00b7 layer " + G.layers[n[0]] + " \u00b7 R = " + fmt(n[2]);
    return c;
  });

  // the column spacing follows the canvas: a graph of few tokens and many layers spreads its
  // columns over the width (room for level token labels) instead of standing in a narrow strip
  function layout() {
    var b = box(), cols = Math.max(1, Math.min(G.columns.length, MAX_COLS));
    var sH = Math.max(Math.min((b.h - 2 * LABEL_PX - 14 - PAD) / (nLayers * DY), 3), 1e-3);
    var dx = Math.max(26, Math.min((b.w - PAD_LEFT - PAD) / cols / sH, 160));
    if (Math.abs(dx - DX) < 0.5) { return; }
    DX = dx;
    width = LEFT + G.columns.length * DX + 20;
    nodeEls.forEach(function (c, k) { c.setAttribute("cx", nx(k).toFixed(2)); });
    edgeEls.forEach(function (line, k) {
      line.setAttribute("x1", nx(G.edges[k][0]).toFixed(2));
      line.setAttribute("x2", nx(G.edges[k][1]).toFixed(2));
    });
  }

  // view: zoom and pan through the viewBox
  var view = {x: 0, y: 0, w: width, h: height};
  function box() {
    var r = svg.getBoundingClientRect();
    return {w: r.width || 800, h: r.height || 540};
  }
  function scale() { var b = box(); return Math.min(b.w / view.w, b.h / view.h); }
  function setView() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    relabel();
  }
  // the visible area in graph units (the viewBox is centred in the canvas: "meet")
  function visible() {
    var b = box(), s = scale(), w = b.w / s, h = b.h / s;
    return {x: view.x - (w - view.w) / 2, y: view.y - (h - view.h) / 2, w: w, h: h, s: s};
  }
  var tokenMode = "";
  function relabel() {
    var v = visible(), s = v.s, fs = LABEL_PX / s;
    gLabels.setAttribute("font-size", fs.toFixed(3));
    gLabels.setAttribute("stroke-width", (3 / s).toFixed(3));
    // layer labels: at the left edge of the view, every one that has room
    var rowPx = DY * s, layerEvery = Math.max(1, Math.ceil((LABEL_PX + 2) / rowPx));
    var lx = v.x + 4 / s;
    backLeft.setAttribute("x", v.x.toFixed(2));
    backLeft.setAttribute("y", v.y.toFixed(2));
    backLeft.setAttribute("width", ((widest * 0.6 * LABEL_PX + 8) / s).toFixed(2));
    backLeft.setAttribute("height", v.h.toFixed(2));
    layerEls.forEach(function (t, li) {
      var shown = (nLayers - 1 - li) % layerEvery === 0;
      t.setAttribute("display", shown ? "inline" : "none");
      t.setAttribute("x", lx.toFixed(2));
      t.setAttribute("y", (TOP + (nLayers - 1 - li) * DY + DY / 2).toFixed(2));
    });
    // token labels: level when a column (or two, staggered) has room for 3 characters,
    // else turned 60 degrees, thinned so that they do not overlap
    var colPx = DX * s, rows = 1, chars, step = 1, band;
    if (colPx - 6 >= 3 * CHAR_PX) {
      tokenMode = "level"; chars = Math.floor((colPx - 6) / CHAR_PX);
    } else if (2 * colPx - 6 >= 3 * CHAR_PX) {
      tokenMode = "stagger"; rows = 2; chars = Math.floor((2 * colPx - 6) / CHAR_PX);
    } else {
      tokenMode = "turned"; chars = TURNED_CHARS; step = Math.ceil(16 / colPx / every);
    }
    var shownChars = Math.min(chars, longest);
    band = tokenMode === "turned" ? shownChars * CHAR_PX * 0.87 + LABEL_PX + 8 : rows * (LABEL_PX + 3) + 8;
    var graphBottom = TOP + nLayers * DY;
    var y0 = Math.min(graphBottom + 4 / s, v.y + v.h - band / s);
    backBottom.setAttribute("x", v.x.toFixed(2));
    backBottom.setAttribute("y", y0.toFixed(2));
    backBottom.setAttribute("width", v.w.toFixed(2));
    backBottom.setAttribute("height", Math.max(0, v.y + v.h - y0).toFixed(2));
    root.setAttribute("data-label-mode", tokenMode);
    tokenEls.forEach(function (item, k) {
      var x = LEFT + item.col * DX + DX / 2;
      var inView = x >= v.x - DX && x <= v.x + v.w + DX;
      var shown = inView && k % step === 0;
      item.el.setAttribute("display", shown ? "inline" : "none");
      if (!shown) { return; }
      var row = rows === 2 ? item.col % 2 : 0;
      var text = short(item.text, chars);
      if (item.el.firstChild.nodeType !== 3) { item.el.insertBefore(document.createTextNode(""), item.el.firstChild); }
      item.el.firstChild.nodeValue = text;
      if (tokenMode === "turned") {
        var y = y0 + 4 / s;
        item.el.setAttribute("x", x.toFixed(2)); item.el.setAttribute("y", y.toFixed(2));
        item.el.setAttribute("text-anchor", "end");
        item.el.setAttribute("dominant-baseline", "central");
        item.el.setAttribute("transform", "rotate(-60 " + x.toFixed(2) + " " + y.toFixed(2) + ")");
      } else {
        item.el.setAttribute("x", x.toFixed(2));
        item.el.setAttribute("y", (y0 + (row * (LABEL_PX + 3) + 2) / s).toFixed(2));
        item.el.setAttribute("text-anchor", "middle");
        item.el.setAttribute("dominant-baseline", "hanging");
        item.el.removeAttribute("transform");
      }
    });
  }
  function toSvg(clientX, clientY) {
    var pt = svg.createSVGPoint();
    pt.x = clientX; pt.y = clientY;
    var m = svg.getScreenCTM();
    return m ? pt.matrixTransform(m.inverse()) : {x: 0, y: 0};
  }
  function zoom(factor, cx, cy) {
    var w = Math.min(Math.max(view.w * factor, 40), width * 4);
    var f = w / view.w;
    view.x = cx - (cx - view.x) * f; view.y = cy - (cy - view.y) * f;
    view.w = w; view.h = view.h * f;
    setView();
    moved();
  }
  function zoomCenter(factor) { zoom(factor, view.x + view.w / 2, view.y + view.h / 2); }
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var p = toSvg(ev.clientX, ev.clientY);
    zoom(ev.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
  }, {passive: false});
  var drag = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.target.classList && ev.target.classList.contains("gx-node")) { return; }
    drag = {x: ev.clientX, y: ev.clientY, moved: false};
    canvas.classList.add("dragging");
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) { return; }
    var a = toSvg(drag.x, drag.y), b = toSvg(ev.clientX, ev.clientY);
    view.x -= b.x - a.x; view.y -= b.y - a.y;
    drag.x = ev.clientX; drag.y = ev.clientY; drag.moved = true;
    setView();
    moved();
  });
  window.addEventListener("pointerup", function () {
    if (drag && !drag.moved) { clear(); }
    drag = null; canvas.classList.remove("dragging");
  });
  document.getElementById("gx-zoom-in").addEventListener("click", function () { zoomCenter(1 / 1.3); });
  document.getElementById("gx-zoom-out").addEventListener("click", function () { zoomCenter(1.3); });
  document.getElementById("gx-reset").addEventListener("click", function () { fit(false); });
  document.getElementById("gx-fit").addEventListener("click", function () { fit(true); });

  // filters: edge weight, layer range, token range
  var weightIn = document.getElementById("gx-weight");
  var weightOut = document.getElementById("gx-weight-value");
  var layerFrom = document.getElementById("gx-layer-from"), layerTo = document.getElementById("gx-layer-to");
  var tokFrom = document.getElementById("gx-token-from"), tokTo = document.getElementById("gx-token-to");
  G.layers.forEach(function (name, li) {
    layerFrom.appendChild(html("option", {value: String(li)}, name));
    layerTo.appendChild(html("option", {value: String(li)}, name));
  });
  layerFrom.value = "0"; layerTo.value = String(nLayers - 1);
  var firstPos = G.columns[0] || 0, lastPos = G.columns[G.columns.length - 1] || 0;
  tokFrom.min = tokTo.min = String(firstPos); tokFrom.max = tokTo.max = String(lastPos);
  tokFrom.value = String(firstPos); tokTo.value = String(lastPos);
  var nodeShown = [], edgeShown = [];
  function num(input, fallback) { var v = parseInt(input.value, 10); return isNaN(v) ? fallback : v; }
  function apply() {
    var threshold = parseFloat(weightIn.value) || 0;
    weightOut.textContent = threshold ? threshold.toPrecision(3) : "0";
    var l0 = num(layerFrom, 0), l1 = num(layerTo, nLayers - 1);
    var t0 = num(tokFrom, firstPos), t1 = num(tokTo, lastPos);
    if (l0 > l1) { var s = l0; l0 = l1; l1 = s; }
    if (t0 > t1) { var u = t0; t0 = t1; t1 = u; }
    G.nodes.forEach(function (n, k) {
      nodeShown[k] = n[0] >= l0 && n[0] <= l1 && n[1] >= t0 && n[1] <= t1;
      nodeEls[k].classList.toggle("gx-hidden", !nodeShown[k]);
      if (!nodeShown[k]) { nodeEls[k].setAttribute("tabindex", "-1"); } else { nodeEls[k].setAttribute("tabindex", "0"); }
    });
    G.edges.forEach(function (e, k) {
      edgeShown[k] = nodeShown[e[0]] && nodeShown[e[1]] && Math.abs(e[2]) >= threshold;
      edgeEls[k].classList.toggle("gx-hidden", !edgeShown[k]);
    });
    if (selected !== null) {
      if (nodeShown[selected]) { select(selected, false); } else { clear(); }
    }
    notify("filter");
  }
  // the view of the shown nodes; a wide graph opens on the MAX_COLS columns nearest the output
  // the shown nodes fill the canvas, with room for the labels at the left and the bottom (in
  // screen pixels, as the labels are); a small graph is not blown up beyond 3x
  function fit(all) {
    view = fitView(all);
    setView();
    userView = null;
    if (all) { moved(); } else { notify("view"); }
  }
  function fitView(all) {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (var k = 0; k < nNodes; k++) {
      if (!nodeShown[k]) { continue; }
      x0 = Math.min(x0, nx(k)); x1 = Math.max(x1, nx(k)); y0 = Math.min(y0, ny(k)); y1 = Math.max(y1, ny(k));
    }
    if (x0 === Infinity) { return {x: 0, y: 0, w: width, h: height}; }
    if (!all) { x0 = Math.max(x0, x1 - MAX_COLS * DX); }
    var b = box(), wc = x1 - x0 + DX, hc = y1 - y0 + DY;
    var bottom = 8 + Math.min(longest, TURNED_CHARS) * CHAR_PX * 0.87 + LABEL_PX;
    var s = Math.min((b.w - PAD_LEFT - PAD) / wc, (b.h - bottom - PAD) / hc, 3);
    // level labels need less room at the bottom: use it for the graph when they fit
    if (DX * s - 6 >= 3 * CHAR_PX) { bottom = 2 * LABEL_PX + 14; s = Math.min((b.w - PAD_LEFT - PAD) / wc, (b.h - bottom - PAD) / hc, 3); }
    s = Math.max(s, 1e-3);
    var w = b.w / s, h = b.h / s;
    var spareW = (b.w - PAD_LEFT - PAD) / s - wc, spareH = (b.h - bottom - PAD) / s - hc;
    return {x: x0 - DX / 2 - PAD_LEFT / s - spareW / 2, y: y0 - DY / 2 - PAD / s - spareH / 2, w: w, h: h};
  }
  // the view as a link keeps it: the zoom relative to the opening view (Reset view) and the
  // centre as (token position, layer index), so it means the same on a phone and a desktop
  var userView = null;
  function moved() { userView = relativeView(); notify("view"); }
  function colToPos(c) {
    var cols = G.columns, n = cols.length;
    if (!n) { return 0; }
    if (c <= 0 || n === 1) { return cols[0] + (n === 1 ? 0 : c * (cols[1] - cols[0])); }
    if (c >= n - 1) { return cols[n - 1] + (c - n + 1) * (cols[n - 1] - cols[n - 2]); }
    var i = Math.floor(c);
    return cols[i] + (c - i) * (cols[i + 1] - cols[i]);
  }
  function posToCol(p) {
    var cols = G.columns, n = cols.length;
    if (n < 2) { return 0; }
    if (p <= cols[0]) { return (p - cols[0]) / (cols[1] - cols[0]); }
    for (var i = 0; i < n - 1; i++) {
      if (p <= cols[i + 1]) { return i + (p - cols[i]) / (cols[i + 1] - cols[i]); }
    }
    return n - 1 + (p - cols[n - 1]) / (cols[n - 1] - cols[n - 2]);
  }
  function relativeView() {
    var f = fitView(false), cx = view.x + view.w / 2, cy = view.y + view.h / 2;
    return {zoom: f.w / view.w, pos: colToPos((cx - LEFT - DX / 2) / DX),
      layer: nLayers - 1 - (cy - TOP - DY / 2) / DY};
  }
  function setRelativeView(state) {
    var f = fitView(false);
    var z = Math.min(Math.max(state.zoom, f.w / (width * 4)), f.w / 40);
    var w = f.w / z, h = f.h / z;
    var cx = LEFT + posToCol(state.pos) * DX + DX / 2, cy = TOP + (nLayers - 1 - state.layer) * DY + DY / 2;
    view = {x: cx - w / 2, y: cy - h / 2, w: w, h: h};
    setView();
    userView = state; // as asked: a resize applies it again, not what a tiny canvas allowed
  }
  weightIn.addEventListener("input", apply);
  [layerFrom, layerTo, tokFrom, tokTo].forEach(function (input) {
    input.addEventListener("change", function () { apply(); fit(false); });
  });

  // selection: strongest incoming / outgoing edges, paths to the output, the side panel
  var panel = document.getElementById("gx-panel");
  var selected = null;
  function strongest(list) {
    return list.filter(function (k) { return edgeShown[k]; })
      .sort(function (a, b) { return Math.abs(G.edges[b][2]) - Math.abs(G.edges[a][2]) || a - b; });
  }
  function reach(start, adjacency, end) {
    var seen = new Uint8Array(nNodes), stack = [start];
    seen[start] = 1;
    while (stack.length) {
      var v = stack.pop();
      adjacency[v].forEach(function (k) {
        if (!edgeShown[k]) { return; }
        var w = G.edges[k][end];
        if (!seen[w]) { seen[w] = 1; stack.push(w); }
      });
    }
    return seen;
  }
  function clear(quiet) {
    selected = null;
    svg.classList.remove("gx-selecting");
    nodeEls.forEach(function (c) { c.classList.remove("gx-selected", "gx-near", "gx-on-path"); });
    edgeEls.forEach(function (l) { l.classList.remove("gx-in", "gx-out", "gx-path"); });
    panel.textContent = "";
    panel.appendChild(html("p", {"class": "muted", id: "gx-hint"}, "Select a node to see its edges."));
    root.removeAttribute("data-selected");
    if (!quiet) { notify("select"); }
  }
  function edgeTable(title, list, end, cls) {
    var frag = document.createDocumentFragment();
    frag.appendChild(html("h4", {}, title + " (" + list.length + ")"));
    if (!list.length) { frag.appendChild(html("p", {"class": "muted"}, "none among the shown edges")); return frag; }
    var table = html("table", {"class": "gx-edges " + cls});
    list.slice(0, TOP_K).forEach(function (k) {
      var other = G.edges[k][end], w = G.edges[k][2];
      var tr = html("tr", {"class": cls + "-row", "data-node": id(other), "data-weight": String(w)});
      var td = html("td");
      var b = html("button", {type: "button", "class": "gx-goto"}, label(other) + " @" + G.layers[G.nodes[other][0]]);
      b.addEventListener("click", function () { select(other, true); nodeEls[other].focus(); });
      td.appendChild(b);
      tr.appendChild(td);
      tr.appendChild(html("td", {"class": "muted"}, "#" + G.nodes[other][1]));
      tr.appendChild(html("td", {"class": "num " + sign(w)}, fmt(w)));
      table.appendChild(tr);
    });
    frag.appendChild(table);
    return frag;
  }
  function select(k, announce) {
    clear(true);
    selected = k;
    svg.classList.add("gx-selecting");
    nodeEls[k].classList.add("gx-selected");
    var ins = strongest(inE[k]), outs = strongest(outE[k]);
    ins.slice(0, TOP_K).forEach(function (e) { edgeEls[e].classList.add("gx-in"); nodeEls[G.edges[e][0]].classList.add("gx-near"); });
    outs.slice(0, TOP_K).forEach(function (e) { edgeEls[e].classList.add("gx-out"); nodeEls[G.edges[e][1]].classList.add("gx-near"); });
    // edges on a path from this node to the output (for the output node: every edge into it)
    var fwd = k === G.output ? null : reach(k, outE, 1), bwd = reach(G.output, inE, 0), onPath = 0;
    G.edges.forEach(function (e, j) {
      if (edgeShown[j] && (fwd === null || fwd[e[0]]) && bwd[e[1]]) {
        edgeEls[j].classList.add("gx-path"); onPath += 1;
        nodeEls[e[0]].classList.add("gx-on-path"); nodeEls[e[1]].classList.add("gx-on-path");
      }
    });
    var n = G.nodes[k];
    panel.textContent = "";
    panel.appendChild(html("h3", {id: "gx-title"}, label(k)));
    var dl = html("dl", {"class": "facts"});
    [["position", String(n[1])], ["layer", G.layers[n[0]]], ["relevance", fmt(n[2])]].forEach(function (row) {
      dl.appendChild(html("dt", {}, row[0]));
      dl.appendChild(html("dd", {"data-field": row[0]}, row[1]));
    });
    panel.appendChild(dl);
    if (hooks.panel) { hooks.panel(k, panel); }
    if (k === G.output) {
      panel.appendChild(html("p", {"class": "muted"}, "The output node: its relevance is the explained value f (target " +
        G.target + (G.contrast !== null ? " vs " + G.contrast : "") + ")."));
    }
    panel.appendChild(html("p", {"class": "muted", id: "gx-paths"}, k === G.output ?
      onPath + " shown edges lead to the output (highlighted)." : (bwd[k] ?
      onPath + " edges on its paths to the output (highlighted)." : "No path to the output among the shown edges.")));
    var neurons = G.neurons[id(k)];
    if (neurons) {
      [["Top hidden dimensions", neurons.top], ["Top MLP neurons", neurons.mlp]].forEach(function (part) {
        if (!part[1].length) { return; }
        panel.appendChild(html("h4", {}, part[0]));
        panel.appendChild(html("p", {"class": "gx-neurons"}, part[1].map(function (t) { return t[0] + ": " + fmt(t[1]); }).join("  \u00b7  ")));
      });
    }
    panel.appendChild(edgeTable("Strongest incoming", ins, 0, "gx-in"));
    panel.appendChild(edgeTable("Strongest outgoing", outs, 1, "gx-out"));
    root.setAttribute("data-selected", id(k));
    notify("select");
  }
  nodeEls.forEach(function (c, k) {
    c.addEventListener("click", function (ev) {
      ev.stopPropagation();
      if ((ev.ctrlKey || ev.metaKey) && hooks.pin) { hooks.pin(k); return; }
      select(k, true);
    });
    c.addEventListener("pointerdown", function (ev) { ev.stopPropagation(); });
    c.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(k, true); }
      if (ev.key === "Escape") { clear(); }
      if (ev.key === "+" || ev.key === "=") { zoomCenter(1 / 1.3); }
      if (ev.key === "-") { zoomCenter(1.3); }
      if ((ev.key === "p" || ev.key === "P") && !ev.ctrlKey && !ev.metaKey && !ev.altKey && hooks.pin) {
        ev.preventDefault(); hooks.pin(k);
      }
    });
  });
  // full screen: the figure fills the window (and the screen where the browser allows it);
  // the button or Esc leaves
  var fullBtn = document.getElementById("gx-fullscreen");
  function setFull(on) {
    root.classList.toggle("gx-full", on);
    document.documentElement.classList.toggle("gx-noscroll", on);
    fullBtn.setAttribute("aria-pressed", on ? "true" : "false");
    fullBtn.textContent = on ? "Exit full screen" : "Full screen";
    layout();
    fit(false);
  }
  function leaveFull() {
    if (document.fullscreenElement === root && document.exitFullscreen) {
      document.exitFullscreen().catch(function () {});
    }
    setFull(false);
  }
  fullBtn.addEventListener("click", function () {
    if (root.classList.contains("gx-full")) { leaveFull(); fullBtn.focus(); return; }
    setFull(true);
    if (root.requestFullscreen) {
      root.requestFullscreen().then(function () { layout(); fit(false); }).catch(function () {});
    }
  });
  document.addEventListener("fullscreenchange", function () {
    if (document.fullscreenElement !== root && root.classList.contains("gx-full")) { setFull(false); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && root.classList.contains("gx-full")) { leaveFull(); }
  });
  var lastBox = box();
  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      var b = box();
      if (Math.abs(b.w - lastBox.w) < 2 && Math.abs(b.h - lastBox.h) < 2) { return; }
      if (b.w < 60 || b.h < 60) { return; } // a canvas squeezed for a moment (a page capture)
      lastBox = b;
      layout();
      if (userView) { setRelativeView(userView); } else { fit(false); }
    }).observe(canvas);
  }
  layout();
  apply();
  fit(false);

  // what the pinned-subgraph pane (explorer-pins.js) may read and do
  var indexOf = {};
  G.nodes.forEach(function (n, k) { indexOf[id(k)] = k; });
  var api = {
    root: root, data: G, hooks: hooks, nodeEls: nodeEls, indexOf: indexOf,
    id: id, label: label, fmt: fmt, sign: sign, html: html,
    layerName: function (k) { return G.layers[G.nodes[k][0]]; },
    select: function (k) { select(k, false); }, clear: function () { clear(); },
    selected: function () { return selected; },
    focus: function (k) { nodeEls[k].focus(); },
    // the filters as numbers, and setting them (the inputs follow)
    filters: function () {
      var l0 = num(layerFrom, 0), l1 = num(layerTo, nLayers - 1), t0 = num(tokFrom, firstPos), t1 = num(tokTo, lastPos);
      return {threshold: parseFloat(weightIn.value) || 0, layers: [Math.min(l0, l1), Math.max(l0, l1)],
        tokens: [Math.min(t0, t1), Math.max(t0, t1)]};
    },
    defaults: {threshold: 0, layers: [0, nLayers - 1], tokens: [firstPos, lastPos]},
    setFilters: function (f) {
      weightIn.value = String(f.threshold);
      layerFrom.value = String(f.layers[0]); layerTo.value = String(f.layers[1]);
      tokFrom.value = String(f.tokens[0]); tokTo.value = String(f.tokens[1]);
      apply();
      fit(false);
    },
    // null while the view is the opening one; else {zoom, pos, layer} (see relativeView)
    view: function () { return userView; },
    setView: function (state) { if (state) { setRelativeView(state); } else { fit(false); } }
  };
  var RG = window.reportgenGraph;
  if (RG && RG.pins) { RG.pins(api); }
  root.setAttribute("data-ready", "yes");
})();
