"""Renderers: turn a plain ``CaseResult`` into a web dossier (``html``) or a figure set (``latex``).

Both outputs share one colour map (``colors``), one token display rule (``tokens``) and one set
of chart specs (``charts``), so a figure in the paper and the web page show the same numbers in
the same colours."""
