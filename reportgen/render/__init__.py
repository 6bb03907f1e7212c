"""Renderers: every output reportgen writes from plain results, and only from them.

A case's dossier is a web page (``html``) and a figure set (``latex``, ``paper``); ``dossier``
computes what both show once per case -- the token cells and the charts of the one chart
registry (``dossier.DOSSIER_CHARTS``). The site around the dossiers (``site``: the index page,
the assets) and the Neuronpedia graph file (``neuronpedia``) live here too. All of them share one
colour map (``colors``), one token display rule (``tokens``) and one set of chart specs
(``charts``), so a figure in the paper and the web page show the same numbers in the same
colours. Nothing here imports torch (tests/test_results.py checks it)."""
