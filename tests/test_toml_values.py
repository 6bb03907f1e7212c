"""The one TOML value writer every case writer uses: what it writes, tomllib reads back."""

from __future__ import annotations

import tomllib

import pytest

from reportgen.toml_values import toml_key, toml_value

AWKWARD = [
    'a "quote" \\ back',
    "line\nbreak\r\ttab",
    "".join(chr(c) for c in range(0x20)) + "\x7f",
    "ünïcode — 世界 ``` \u2028 \u00a0",
    "",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_every_string_reads_back_exactly(text):
    assert tomllib.loads(f"v = {toml_value(text)}")["v"] == text


def test_a_lone_surrogate_becomes_the_replacement_character():
    written = toml_value("a\ud800b")
    assert tomllib.loads(f"v = {written}")["v"] == "a\ufffdb"


def test_tables_lists_and_keys_read_back():
    value = {"document": [18, 10139], "odd key": [1.5, True, "x"], "empty": {}}
    line = f"{toml_key('segments')} = {toml_value(value)}\n{toml_key('a b')} = 1"
    assert tomllib.loads(line) == {"segments": value, "a b": 1}


def test_an_unsupported_type_is_refused():
    with pytest.raises(TypeError, match="NoneType"):
        toml_value(None)
