"""Look for a real long-input failure: a whole standard-library file, then questions about it.

    .venv/bin/python scripts/probe_long_failure.py gemma3-270m socket.py QUESTIONS.txt

QUESTIONS.txt holds one ``question|right answer`` per line. The file is forwarded once; each
question continues from a copy of its key/value cache, so eight questions on 10k tokens cost
about one long forward. Prints, per question, the greedy next token after
"Answer: The function is `", the right answer's first token and their logit gap: a gap >= 1
with a wrong greedy token is a clean failure to write as a case (prompt = the printed head +
question, target = greedy, contrast = right, ``chat = false``: the probe uses no chat template).
benchmarks/questions/socket.txt found three on gemma3-270m at 10,141 tokens (gaps 1.43-2.67)."""

from __future__ import annotations

import copy
import sys
import sysconfig
from pathlib import Path

import torch

from reportgen.models import load_model


def main(model_spec: str, module_file: str, questions: str) -> None:
    loaded = load_model(model_spec)
    model, tok = loaded.model.eval(), loaded.tokenizer
    source = (Path(sysconfig.get_paths()["stdlib"]) / module_file).read_text(encoding="utf-8")
    head = (
        f"Here is the source of Python's `{module_file[:-3]}` module.\n\n```python\n{source}```\n\n"
    )
    ids = tok(head, return_tensors="pt").input_ids
    print(f"{module_file}: {ids.shape[1]} tokens", flush=True)
    with torch.no_grad():
        cache = model(ids, use_cache=True, logits_to_keep=1).past_key_values
    for line in Path(questions).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        question, right = line.rsplit("|", 1)
        text = f"Question: {question}\nAnswer: The function is `"
        q_ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(
                q_ids, past_key_values=copy.deepcopy(cache), use_cache=True, logits_to_keep=1
            ).logits[0, -1]
        greedy = int(logits.argmax())
        right_id = tok(right, add_special_tokens=False).input_ids[0]
        gap = float(logits[greedy] - logits[right_id])
        print(
            f"{question[:60]!r}: greedy {tok.decode([greedy])!r} (id {greedy}), "
            f"right {tok.decode([right_id])!r} (id {right_id}), gap {gap:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
