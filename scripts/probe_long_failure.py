"""Look for a real long-input failure: a whole standard-library file, then questions about it.

    .venv/bin/python scripts/probe_long_failure.py gemma3-270m socket.py QUESTIONS.txt
    .venv/bin/python scripts/probe_long_failure.py gemma3-270m socket.py QUESTIONS.txt \\
        --case 6 --id socket-has-dualstack-ipv6-10k \\
        --out benchmarks/cases/socket-has-dualstack-ipv6-10k.toml

QUESTIONS.txt holds one ``question|right answer`` per line. The file is forwarded once; each
question continues from a copy of its key/value cache, so eight questions on 10k tokens cost
about one long forward. Prints, per question, the greedy next token after
"Answer: The function is `", the right answer's first token and their logit gap: a gap >= 1
with a wrong greedy token is a clean failure.
benchmarks/questions/socket.txt found three on gemma3-270m at 10,141 tokens (gaps 1.43-2.67).

``--case N`` writes question N (1-based) as a case file instead, pinned the way a build will
read it: the ids come from reportgen's own ``prepare_input`` (prompt = file + question,
``chat = false``, prefix "The function is `" with its exact ids), the gap is measured again on
exactly those ids with one full forward, and the file is refused unless the greedy token is
wrong by at least ``--min-gap``. ``segments`` mark the document and the question, ``relevant``
the right function's definition line and docstring."""

from __future__ import annotations

import argparse
import copy
import sysconfig
from pathlib import Path

import torch

from reportgen.cases import Case, case_toml
from reportgen.inputs import prepare_input
from reportgen.models import load_model
from reportgen.question import PromptSpec, Question

ANSWER_PREFIX = "The function is `"


def document_head(module_file: str) -> tuple[str, str]:
    """The stdlib file's text and the prompt's head that quotes it whole."""
    source = (Path(sysconfig.get_paths()["stdlib"]) / module_file).read_text(encoding="utf-8")
    name = module_file[:-3]
    return source, f"Here is the source of Python's `{name}` module.\n\n```python\n{source}```\n\n"


def read_questions(path: str) -> list[tuple[str, str]]:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [tuple(line.rsplit("|", 1)) for line in lines]  # type: ignore[misc]


def probe(loaded, module_file: str, questions: list[tuple[str, str]]) -> None:
    model, tok = loaded.model.eval(), loaded.tokenizer
    _, head = document_head(module_file)
    ids = tok(head, return_tensors="pt").input_ids
    print(f"{module_file}: {ids.shape[1]} tokens", flush=True)
    with torch.no_grad():
        cache = model(ids, use_cache=True, logits_to_keep=1).past_key_values
    for question, right in questions:
        text = f"Question: {question}\nAnswer: {ANSWER_PREFIX}"
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


def token_span(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """The half-open token span covering characters [start, end) of the encoded text."""
    inside = [i for i, (a, b) in enumerate(offsets) if b > start and a < end and b > a]
    return inside[0], inside[-1] + 1


def write_case(loaded, args: argparse.Namespace, questions: list[tuple[str, str]]) -> None:
    tok = loaded.tokenizer
    question, right = questions[args.case - 1]
    source, head = document_head(args.module_file)
    prompt = f"{head}Question: {question}\nAnswer: "
    prefix_ids = tuple(tok.encode(ANSWER_PREFIX, add_special_tokens=False))
    spec = PromptSpec(prompt=prompt, chat=False, prefix=ANSWER_PREFIX, prefix_ids=prefix_ids)
    prepared = prepare_input(tok, spec)
    with torch.no_grad():
        logits = loaded.model.eval()(torch.tensor([prepared.token_ids]), logits_to_keep=1).logits[
            0, -1
        ]
    greedy = int(logits.argmax())
    right_id = tok.encode(right, add_special_tokens=False)[0]
    gap = float(logits[greedy] - logits[right_id])
    print(
        f"{len(prepared.token_ids)} tokens: greedy {tok.decode([greedy])!r}, "
        f"right {tok.decode([right_id])!r}, gap {gap:.2f}",
        flush=True,
    )
    if greedy == right_id or gap < args.min_gap:
        raise SystemExit(f"question {args.case} is not a clean failure here (gap {gap:.2f})")

    # spans from the prompt's own encoding (the prefix ids follow it)
    encoded = tok(prompt, add_special_tokens=True, return_offsets_mapping=True)
    if list(encoded.input_ids) != list(prepared.token_ids[: prepared.prompt_length]):
        raise SystemExit("the prompt's offsets do not match the case's ids")
    offsets = [tuple(o) for o in encoded.offset_mapping]
    doc_start = head.index(source)
    q_start = prompt.index("Question: ")
    def_start = source.find(f"def {right}(")
    body = source.find("\n", source.find(":\n", def_start)) + 1  # the line after the signature
    doc_open = source.find('"""', body)
    doc_close = source.find('"""', doc_open + 3)
    if def_start < 0 or doc_open < 0 or source[body:doc_open].strip() or doc_close < 0:
        raise SystemExit(f"no `def {right}(` with a docstring in {args.module_file}")
    definition = (doc_start + def_start, doc_start + doc_close + 3)
    case = Case(
        path=args.out,
        id=args.id,
        title=args.title
        or f"Names {tok.decode([greedy]).strip()} where {right} is asked for "
        f"({len(prepared.token_ids):,} tokens of {args.module_file})",
        description=args.description
        or (
            f"Given the whole source of Python's {args.module_file} and asked: {question} "
            f"the model starts the answer with {tok.decode([greedy]).strip()!r} by a logit gap of "
            f"{gap:.2f}; the right answer is {right}."
        ),
        model=args.model,
        question=Question(spec, greedy, right_id),
        segments={
            "document": token_span(offsets, doc_start, doc_start + len(source)),
            "question": token_span(offsets, q_start, len(prompt)),
        },
        relevant=(token_span(offsets, *definition),),
        tags={
            "benchmark": "long-context",
            "pattern": "wrong-entity",
            "source": f"Python stdlib {args.module_file}",
        },
    )
    text = case_toml(case)  # read back: what we write must be a valid case
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: segments {case.segments}, relevant {list(case.relevant)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("module_file", help="a file of the standard library, e.g. socket.py")
    parser.add_argument("questions", help="one 'question|right answer' per line")
    parser.add_argument("--case", type=int, help="write question N (1-based) as a case file")
    parser.add_argument("--id", help="the case id (with --case)")
    parser.add_argument("--out", help="the case file to write (with --case)")
    parser.add_argument("--title", default="")
    parser.add_argument("--description", default="")
    parser.add_argument("--min-gap", type=float, default=1.0)
    args = parser.parse_args()
    loaded = load_model(args.model)
    questions = read_questions(args.questions)
    if args.case is None:
        probe(loaded, args.module_file, questions)
        return
    if not (args.id and args.out) or not 1 <= args.case <= len(questions):
        parser.error(f"--case needs --id and --out, and N in 1..{len(questions)}")
    write_case(loaded, args, questions)


if __name__ == "__main__":
    main()
