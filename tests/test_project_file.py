"""The project file (reportgen.toml): one reader, errors naming the file and the field."""

from pathlib import Path

import pytest

from reportgen.errors import CaseError
from reportgen.project import ModelSettings, find_project_file, load_project


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reportgen.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_is_the_empty_project(tmp_path):
    project = load_project(None)
    assert project.site is None and project.models == {}


def test_site_and_models_parse(tmp_path):
    path = write(
        tmp_path,
        """
[site]
title = "Failures of SmolLM2"
authors = ["A. Person", {name = "B. Person", affiliation = "Lab", url = "https://b.example"}]
abstract = "We *explain* wrong tokens."
links = [{label = "Code", url = "https://example.org/code"}]
featured = ["primary-colors-yellow"]

[models.smollm2-135m-instruct]
device = "cuda:1"
dtype = "bfloat16"
""",
    )
    project = load_project(path)
    assert project.site.title == "Failures of SmolLM2"
    assert [a.name for a in project.site.authors] == ["A. Person", "B. Person"]
    assert project.site.authors[1].affiliation == "Lab"
    assert project.site.links[0].url == "https://example.org/code"
    assert project.site.featured == ("primary-colors-yellow",)
    assert project.models["smollm2-135m-instruct"] == ModelSettings(
        device="cuda:1", dtype="bfloat16"
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[site]\ntitel = 'x'", "site.titel"),
        ("[site]\nlinks = [{label = 'x', url = 'javascript:alert(1)'}]", "site.links[0].url"),
        ("[site]\nauthors = [{affiliation = 'x'}]", "site.authors[0].name"),
        ("[models.m]\ndevice = 'tpu'", "models.m.device"),
        ("[models.m]\ndtype = 'float8'", "models.m.dtype"),
        ("[models.m]\nquantization = '3bit'", "models.m.quantization"),
        ("[other]\nx = 1", "other"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(CaseError) as info:
        load_project(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_found_beside_the_cases_folder(tmp_path):
    (tmp_path / "cases").mkdir()
    path = write(tmp_path, "[site]\ntitle = 't'\n")
    assert find_project_file([tmp_path / "cases"]) == path
    assert find_project_file([tmp_path / "cases" / "x.toml"]) == path


def test_not_taken_from_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, "[site]\ntitle = 't'\n")
    elsewhere = tmp_path / "a" / "b" / "cases"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert find_project_file([elsewhere]) is None
