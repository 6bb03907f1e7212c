/* reportgen graph explorer: the pinned subgraph as a figure and as files.
   Pure functions of the explorer data G (see reportgen/render/explorer.py) and the pins
   {pinned: [node index], groups: [{label, members: [node index]}]}: the layout of the drawn
   units (a supernode or a lone pinned node), the standalone TikZ document, its SVG preview,
   the Neuronpedia-style JSON and the case file's [graph] lines. The layout and the TikZ are
   those of reportgen/render/pinned_figure.py (the build's figure), so a figure exported here
   and the one the build draws from the case file look alike; one difference: a drawing
   narrower than the page is centred at its own size rather than scaled up (scaling would blow
   its 7 pt text up to 20 pt and more for a few nodes at the text width). No DOM state here. */
(function () {
  "use strict";
  var RG = window.reportgenGraph = window.reportgenGraph || {};
  var SVGNS = "http://www.w3.org/2000/svg";
  // the dossier's colours (reportgen/render/colors.py)
  var POSITIVE = [178, 24, 43], NEGATIVE = [33, 102, 172], AXIS = [120, 120, 120];
  // pinned_figure.py's geometry, in inches
  var ROW_IN = 0.5, LEFT_IN = 0.45;
  RG.WIDTHS = {column: 3.25, text: 6.75};

  // --- text ---------------------------------------------------------------------------------
  // tex.py's escape table: every character TeX could read as markup prints as itself
  var ESCAPES = {
    "\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "$": "\\$", "&": "\\&", "#": "\\#",
    "^": "\\textasciicircum{}", "_": "\\_", "%": "\\%", "~": "\\textasciitilde{}",
    "\"": "\\textquotedbl{}", "|": "\\textbar{}", "<": "{<}", ">": "{>}", "-": "{-}",
    "`": "\\textasciigrave{}", "'": "\\textquotesingle{}", ",": "{,}", "[": "{[}", "]": "{]}"
  };
  function placeholder(code) {
    var hex = code.toString(16).toUpperCase();
    while (hex.length < 4) { hex = "0" + hex; }
    return "\\fbox{\\tiny U+" + hex + "}";
  }
  // printable ASCII and Latin-1 typeset with T1 + utf8 inputenc; anything else is boxed
  function typesettable(code) { return (code >= 0x20 && code < 0x7f) || (code >= 0xa0 && code <= 0xff && code !== 0xad); }
  // the marks visible_text() puts into a token label (tokens.py), typeset as the build does
  var MARKS = {"\u21b5": "$\\hookleftarrow$", "\u21e5": "$\\rightarrow$", "\u2423": "\\textvisiblespace{}"};
  function escapeLatex(text, token) {
    var out = [], chars = Array.from(text);
    if (token && text === "\u2205") { return "$\\emptyset$"; }
    for (var i = 0; i < chars.length; i++) {
      var ch = chars[i], code = ch.codePointAt(0);
      if (token && MARKS[ch]) { out.push(MARKS[ch]); continue; }
      if (token && ch === "\u27e6") { // a hidden character shown as ⟦U+XXXX⟧
        var m = /^U\+([0-9A-F]{4,6})\u27e7/.exec(chars.slice(i + 1, i + 10).join(""));
        if (m) { out.push(placeholder(parseInt(m[1], 16))); i += m[0].length; continue; }
      }
      if (ESCAPES[ch]) { out.push(ESCAPES[ch]); } else if (ch === " ") { out.push(token ? "\\ " : " "); } else if (typesettable(code)) { out.push(ch); } else if (/\s/.test(ch)) { out.push(" "); } else { out.push(placeholder(code)); }
    }
    return out.join("");
  }
  RG.escapeLatex = escapeLatex;
  // Python's format(v, "+.Ng"): N significant digits, trailing zeros dropped, exponent form
  // below 1e-4 or from 10^N on
  function pyG(v, digits) {
    if (v === 0) { return "+0"; }
    var e = parseInt(v.toExponential(digits - 1).split("e")[1], 10), s;
    if (e < -4 || e >= digits) {
      var parts = v.toExponential(digits - 1).split("e");
      var mant = parts[0].indexOf(".") >= 0 ? parts[0].replace(/0+$/, "").replace(/\.$/, "") : parts[0];
      var ex = Math.abs(e) < 10 ? "0" + Math.abs(e) : String(Math.abs(e));
      s = mant + "e" + (e < 0 ? "-" : "+") + ex;
    } else {
      s = v.toFixed(Math.max(0, digits - 1 - e));
      if (s.indexOf(".") >= 0) { s = s.replace(/0+$/, "").replace(/\.$/, ""); }
    }
    return (v >= 0 ? "+" : "") + s;
  }
  RG.pyG = pyG;

  // --- ids ----------------------------------------------------------------------------------
  // the node's id in graph.neuronpedia.json (reportgen/render/neuronpedia.py): the embedding layer is
  // "E_<token id>_<position>", the later layers "<depth - 1>_-1_<position>"
  function npId(G, k) {
    var li = G.nodes[k][0], pos = G.nodes[k][1];
    if (li === 0) {
      var c = G.columns.indexOf(pos), tid = G.token_ids ? G.token_ids[c] : null;
      return tid === null || tid === undefined ? "n0-" + pos : "E_" + tid + "_" + pos;
    }
    return (li - 1) + "_-1_" + pos;
  }
  RG.npId = npId;
  function rid(G, k) { return "n" + G.nodes[k][0] + "-" + G.nodes[k][1]; }
  function token(G, k) { return G.labels[G.columns.indexOf(G.nodes[k][1])]; }
  function nodeName(G, k) { return token(G, k) + " @" + G.layers[G.nodes[k][0]]; }
  RG.nodeName = nodeName;

  // --- layout (pinned_figure.pinned_units) ---------------------------------------------------
  // supernodes first (each at the mean column and row of its members), then every other
  // pinned node; an edge between two units sums the drawn edges between their members (an
  // edge inside a supernode is left out)
  RG.layout = function (G, pins) {
    var isPinned = {}, rowsSeen = {}, colsSeen = {};
    pins.pinned.forEach(function (k) { isPinned[k] = true; rowsSeen[G.nodes[k][0]] = true; colsSeen[G.nodes[k][1]] = true; });
    var rows = Object.keys(rowsSeen).map(Number).sort(function (a, b) { return a - b; });
    var cols = Object.keys(colsSeen).map(Number).sort(function (a, b) { return a - b; });
    function row(k) { return rows.indexOf(G.nodes[k][0]); }
    function col(k) { return cols.indexOf(G.nodes[k][1]); }
    function rel(k) { return G.nodes[k][2]; }
    var units = [], owner = {};
    pins.groups.forEach(function (g) {
      var members = g.members.filter(function (k) { return isPinned[k] && owner[k] === undefined; });
      if (!members.length) { return; }
      members.forEach(function (k) { owner[k] = units.length; });
      units.push({key: "s" + units.length, label: g.label, members: members,
        relevance: members.reduce(function (a, k) { return a + rel(k); }, 0),
        x: members.reduce(function (a, k) { return a + col(k); }, 0) / members.length,
        y: members.reduce(function (a, k) { return a + row(k); }, 0) / members.length});
    });
    pins.pinned.forEach(function (k) {
      if (owner[k] !== undefined) { return; }
      owner[k] = units.length;
      units.push({key: "n" + units.length, label: "", members: [k], relevance: rel(k), x: col(k), y: row(k)});
    });
    var sums = {}, order = [];
    G.edges.forEach(function (e) {
      var a = owner[e[0]], b = owner[e[1]];
      if (a === undefined || b === undefined || a === b) { return; }
      var key = a + "," + b;
      if (!(key in sums)) { sums[key] = 0; order.push([a, b]); }
      sums[key] += e[2];
    });
    var edges = order.map(function (ab) { return [ab[0], ab[1], sums[ab[0] + "," + ab[1]]]; });
    return {units: units, edges: edges, rows: rows, cols: cols, owner: owner};
  };

  // --- the figure ---------------------------------------------------------------------------
  // the positions and sizes both drawings share, in inches (TikZ: y up)
  function geometry(lay, widthIn) {
    var dx = Math.min((widthIn - LEFT_IN - 0.2) / Math.max(1, lay.cols.length - 1), 1.1);
    var maxR = 0, maxW = 0;
    lay.units.forEach(function (u) { maxR = Math.max(maxR, Math.abs(u.relevance)); });
    lay.edges.forEach(function (e) { maxW = Math.max(maxW, Math.abs(e[2])); });
    return {dx: dx, maxR: maxR || 1, maxW: maxW || 1,
      at: function (u) { return [u.x * dx, u.y * ROW_IN]; },
      radius: function (u) { return 0.025 + 0.06 * Math.sqrt(Math.abs(u.relevance) / (maxR || 1)); },
      lineWidth: function (w) { return 0.4 + 2.6 * Math.abs(w) / (maxW || 1); },
      // strongest edges drawn last, on top
      edgeOrder: lay.edges.slice().sort(function (a, b) { return Math.abs(a[2]) - Math.abs(b[2]); })};
  }
  function layerText(name) { return name === "emb" ? "emb" : "layer " + name; }
  function f3(v) { return v.toFixed(3); }

  // a standalone LaTeX document exactly widthIn inches wide (drawn for that width, then
  // scaled to it exactly); every string is escaped, so pdflatex -no-shell-escape compiles it
  RG.tikz = function (G, lay, widthIn) {
    var g = geometry(lay, widthIn);
    var lines = [
      "\\begin{tikzpicture}[x=1in,y=1in]",
      "\\definecolor{rgpos}{RGB}{" + POSITIVE.join(",") + "}",
      "\\definecolor{rgneg}{RGB}{" + NEGATIVE.join(",") + "}",
      "\\definecolor{rgaxis}{RGB}{" + AXIS.join(",") + "}"
    ];
    lay.rows.forEach(function (li, i) {
      lines.push("\\node[anchor=east,font=\\scriptsize\\sffamily,text=rgaxis] at (-0.15," + f3(i * ROW_IN) + ") {" +
        escapeLatex(layerText(G.layers[li]), false) + "};");
    });
    lay.cols.forEach(function (pos, i) {
      var text = G.labels[G.columns.indexOf(pos)];
      lines.push("\\node[anchor=east,rotate=45,font=\\scriptsize\\ttfamily,text=rgaxis] at (" + f3(i * g.dx) + ",-0.2) {" +
        escapeLatex(pos + " ", true) + escapeLatex(text, true) + "};");
    });
    g.edgeOrder.forEach(function (e) {
      var p = g.at(lay.units[e[0]]), q = g.at(lay.units[e[1]]);
      lines.push("\\draw[color=" + (e[2] >= 0 ? "rgpos" : "rgneg") + ",line width=" + g.lineWidth(e[2]).toFixed(2) +
        "pt,opacity=0.65,line cap=round] (" + f3(p[0]) + "," + f3(p[1]) + ") -- (" + f3(q[0]) + "," + f3(q[1]) + ");");
    });
    lay.units.forEach(function (u) {
      var p = g.at(u), color = u.relevance >= 0 ? "rgpos" : "rgneg";
      if (u.label) {
        lines.push("\\node[draw=" + color + ",fill=" + color + "!12,rounded corners=2pt,line width=0.8pt," +
          "inner sep=2pt,align=center,font=\\scriptsize\\sffamily] at (" + f3(p[0]) + "," + f3(p[1]) + ") {" +
          escapeLatex(u.label, false) + "\\\\[-1pt]{\\tiny $\\Sigma R = " + pyG(u.relevance, 3) + "$}};");
      } else {
        lines.push("\\fill[color=" + color + "] (" + f3(p[0]) + "," + f3(p[1]) + ") circle (" + f3(g.radius(u)) + ");");
      }
    });
    lines.push("\\end{tikzpicture}");
    var w = widthIn + "in";
    return [
      "% The pinned subgraph of case " + G.case_id + ", exported by the reportgen graph explorer.",
      "% Exactly " + w + " wide; make the PDF with: pdflatex -no-shell-escape FILE.tex",
      "\\documentclass[border=0pt]{standalone}",
      "\\usepackage[T1]{fontenc}",
      "\\usepackage[utf8]{inputenc}",
      "\\usepackage{lmodern}",
      "\\usepackage{textcomp}",
      "\\usepackage{xcolor}",
      "\\usepackage{graphicx}",
      "\\usepackage{tikz}",
      "\\newsavebox{\\rgfigure}",
      "\\begin{document}",
      "\\sbox{\\rgfigure}{%",
      lines.join("\n") + "}%",
      "% the page is exactly " + w + " wide: a wider drawing is scaled down to it, a narrower one is",
      "% centred at its own size (its text stays at the paper's size)",
      "\\makebox[" + w + "]{\\ifdim\\wd\\rgfigure>" + w + "\\resizebox{" + w + "}{!}{\\usebox{\\rgfigure}}\\else\\usebox{\\rgfigure}\\fi}%",
      "\\end{document}",
      ""
    ].join("\n");
  };

  // the same drawing as SVG (1 unit = 1 inch, y down), for the pane's preview
  function svgEl(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function rgb(c, amount) {
    var a = amount === undefined ? 1 : amount;
    return "rgb(" + c.map(function (v) { return Math.round(255 + (v - 255) * a); }).join(",") + ")";
  }
  var PT = 1 / 72, SCRIPT = 7 * PT, TINY = 5 * PT, CHAR = 0.55, PREVIEW_PX = 150;
  RG.svgFigure = function (G, lay, widthIn) {
    var g = geometry(lay, widthIn);
    var svg = svgEl("svg", {"class": "gx-sub-svg", "font-family": "sans-serif"});
    var labelChars = 1, tokenChars = 1, right = 0, top = 0;
    lay.rows.forEach(function (li) { labelChars = Math.max(labelChars, layerText(G.layers[li]).length); });
    lay.cols.forEach(function (pos) { tokenChars = Math.max(tokenChars, (pos + " " + G.labels[G.columns.indexOf(pos)]).length); });
    var axis = svgEl("g", {fill: rgb(AXIS), "font-size": SCRIPT.toFixed(4)}, svg);
    lay.rows.forEach(function (li, i) {
      var t = svgEl("text", {x: -0.15, y: f3(-i * ROW_IN), "text-anchor": "end", "dominant-baseline": "central"}, axis);
      t.textContent = layerText(G.layers[li]);
      top = Math.max(top, i * ROW_IN);
    });
    lay.cols.forEach(function (pos, i) {
      var x = f3(i * g.dx);
      var t = svgEl("text", {x: x, y: 0.2, "text-anchor": "end", "dominant-baseline": "central", "font-family": "monospace",
        transform: "rotate(-45 " + x + " 0.2)"}, axis);
      t.textContent = pos + " " + G.labels[G.columns.indexOf(pos)];
      right = Math.max(right, i * g.dx);
    });
    g.edgeOrder.forEach(function (e) {
      var p = g.at(lay.units[e[0]]), q = g.at(lay.units[e[1]]);
      svgEl("line", {x1: f3(p[0]), y1: f3(-p[1]), x2: f3(q[0]), y2: f3(-q[1]), stroke: rgb(e[2] >= 0 ? POSITIVE : NEGATIVE),
        "stroke-width": (g.lineWidth(e[2]) * PT).toFixed(4), "stroke-opacity": 0.65, "stroke-linecap": "round",
        "class": "gx-sub-edge", "data-weight": String(e[2])}, svg);
    });
    lay.units.forEach(function (u) {
      var p = g.at(u), color = u.relevance >= 0 ? POSITIVE : NEGATIVE;
      if (u.label) {
        var sigma = "\u03a3R = " + pyG(u.relevance, 3);
        var w = Math.max(u.label.length * SCRIPT * CHAR, sigma.length * TINY * CHAR) + 4 * PT + 1.6 * PT;
        var h = SCRIPT * 1.2 + TINY * 1.2 + 4 * PT;
        var box = svgEl("g", {"class": "gx-sub-unit", "data-label": u.label}, svg);
        svgEl("rect", {x: f3(p[0] - w / 2), y: f3(-p[1] - h / 2), width: f3(w), height: f3(h), rx: 2 * PT,
          fill: rgb(color, 0.12), stroke: rgb(color), "stroke-width": (0.8 * PT).toFixed(4)}, box);
        var t1 = svgEl("text", {x: f3(p[0]), y: f3(-p[1] - h / 2 + 2 * PT + SCRIPT * 0.95), "text-anchor": "middle",
          "font-size": SCRIPT.toFixed(4), fill: "#1a1a1a"}, box);
        t1.textContent = u.label;
        var t2 = svgEl("text", {x: f3(p[0]), y: f3(-p[1] + h / 2 - 2 * PT - TINY * 0.25), "text-anchor": "middle",
          "font-size": TINY.toFixed(4), fill: "#1a1a1a"}, box);
        t2.textContent = sigma;
        right = Math.max(right, p[0] + w / 2); top = Math.max(top, p[1] + h / 2);
      } else {
        svgEl("circle", {cx: f3(p[0]), cy: f3(-p[1]), r: f3(g.radius(u)), fill: rgb(color), "class": "gx-sub-node"}, svg);
        right = Math.max(right, p[0] + g.radius(u)); top = Math.max(top, p[1] + g.radius(u));
      }
    });
    var left = -0.15 - labelChars * SCRIPT * CHAR - 0.05;
    var leftTok = -tokenChars * SCRIPT * CHAR * 0.71 - 0.05;
    var x0 = Math.min(left, leftTok), bottom = 0.2 + tokenChars * SCRIPT * CHAR * 0.71 + 0.08;
    var vb = [x0, -top - 0.08, right - x0 + 0.08, top + 0.08 + bottom];
    svg.setAttribute("viewBox", vb.map(f3).join(" "));
    // on screen at about the printed size (the exported figure never scales its text up)
    svg.style.maxWidth = Math.round(Math.min(vb[2], widthIn) * PREVIEW_PX) + "px";
    return svg;
  };

  // --- files --------------------------------------------------------------------------------
  // the pinned subgraph as a graph file in the shape Neuronpedia and circuit-tracer read
  // ({metadata, qParams, nodes, links}; ids as in the dossier's graph.neuronpedia.json), with
  // the explorer's own ids (n<layer index>-<position>, as in the page's link) beside them
  RG.exportJson = function (G, pins, extra) {
    var lay = RG.layout(G, pins), iv = G.interventions;
    var groupOf = {};
    lay.units.forEach(function (u) { if (u.label) { u.members.forEach(function (k) { groupOf[k] = u.label; }); } });
    function unitId(u) { return u.label ? "supernode:" + u.label : npId(G, u.members[0]); }
    var nodes = pins.pinned.map(function (k) {
      var li = G.nodes[k][0], node = {
        node_id: npId(G, k), reportgen_id: rid(G, k), layer: li === 0 ? "E" : String(li - 1),
        reportgen_layer: G.layers[li], ctx_idx: G.nodes[k][1], token: token(G, k),
        feature: li === 0 ? G.nodes[k][1] : -1, feature_type: li === 0 ? "embedding" : "residual stream",
        relevance: G.nodes[k][2], supernode: groupOf[k] === undefined ? null : groupOf[k]
      };
      if (iv && iv.nodes[rid(G, k)] !== undefined) {
        node.f_ablated = iv.nodes[rid(G, k)];
        node.delta_f = iv.f_clean - node.f_ablated;
      }
      return node;
    });
    var isPinned = {};
    pins.pinned.forEach(function (k) { isPinned[k] = true; });
    var links = G.edges.filter(function (e) { return isPinned[e[0]] && isPinned[e[1]]; }).map(function (e) {
      return {source: npId(G, e[0]), target: npId(G, e[1]), weight: e[2]};
    });
    var groups = lay.units.filter(function (u) { return u.label; });
    return {
      metadata: {
        slug: G.case_id + "-subgraph",
        info: {
          description: "A pinned subgraph of reportgen case " + G.case_id + " (contrastive AttnLRP; nodes are " +
            "whole hidden states). node_id as in the dossier's graph.neuronpedia.json; reportgen_id as in the page's " +
            "link (n<layer index>-<position>). links: the explorer's drawn edges between pinned nodes; unit_links: " +
            "their sums between supernodes and lone nodes.",
          generator: {name: "reportgen graph explorer"}
        }
      },
      qParams: {
        pinnedIds: pins.pinned.map(function (k) { return npId(G, k); }),
        supernodes: groups.map(function (u) { return [u.label].concat(u.members.map(function (k) { return npId(G, k); })); }),
        linkType: "both",
        clickedId: extra.clicked === null ? "" : npId(G, extra.clicked),
        sg_pos: ""
      },
      nodes: nodes,
      links: links,
      supernodes: groups.map(function (u) {
        return {label: u.label, node_ids: u.members.map(function (k) { return npId(G, k); }), relevance: u.relevance};
      }),
      unit_links: lay.edges.map(function (e) {
        return {source: unitId(lay.units[e[0]]), target: unitId(lay.units[e[1]]), weight: e[2]};
      }),
      reportgen: {
        case_id: G.case_id,
        pinnedIds: pins.pinned.map(function (k) { return rid(G, k); }),
        supernodes: groups.map(function (u) { return [u.label].concat(u.members.map(function (k) { return rid(G, k); })); }),
        clickedId: extra.clicked === null ? "" : rid(G, extra.clicked),
        link: extra.link,
        interventions: iv ? {baseline: iv.baseline, f_clean: iv.f_clean} : null
      }
    };
  };

  // the lines a case file's [graph] table takes so that the build draws this figure (labels
  // made unique and non-empty: the case file requires it)
  function tomlString(text) { return JSON.stringify(text).replace(/\u007f/g, "\\u007F"); }
  RG.caseLines = function (G, pins) {
    function node(k) { return "[" + tomlString(G.layers[G.nodes[k][0]]) + ", " + G.nodes[k][1] + "]"; }
    var seen = {}, lines = ["[graph]", "pinned = [" + pins.pinned.map(node).join(", ") + "]"];
    var groups = RG.layout(G, pins).units.filter(function (u) { return u.label; });
    if (groups.length) {
      lines.push("supernodes = [");
      groups.forEach(function (u, i) {
        var label = u.label.trim() || "group " + (i + 1), n = 2, base = label;
        while (seen[label]) { label = base + " (" + (n++) + ")"; }
        seen[label] = true;
        lines.push("  { label = " + tomlString(label) + ", nodes = [" + u.members.map(node).join(", ") + "] },");
      });
      lines.push("]");
    }
    return lines.join("\n") + "\n";
  };

  // a file made in the page, saved by the browser (works offline and from a single file)
  RG.download = function (name, text, mime) {
    var url = URL.createObjectURL(new Blob([text], {type: mime}));
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  };
})();
