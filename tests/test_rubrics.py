"""Loading rubrics from files, and the one-line errors for every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redraft.errors import ConfigError
from redraft.rubrics import load_rubric, read_text_file
from redraft.types import Rubric

YAML_RUBRIC = """\
description: A haiku about rain.
criteria:
  - Three lines of 5, 7 and 5 syllables.
  - Mentions rain without using the word "rain".
scale:
  1: Not a haiku.
  2: A haiku shape with major flaws.
  3: Acceptable.
  4: Good.
  5: Excellent.
pass_score: 5
"""


def test_a_yaml_rubric_becomes_a_rubric(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(YAML_RUBRIC, encoding="utf-8")
    rubric = load_rubric(path)
    assert isinstance(rubric, Rubric)
    assert rubric.description == "A haiku about rain."
    assert rubric.criteria[1] == 'Mentions rain without using the word "rain".'
    assert rubric.scale[5] == "Excellent."
    assert rubric.pass_score == 5


def test_a_json_rubric_with_string_score_keys(tmp_path: Path) -> None:
    path = tmp_path / "rubric.JSON"  # the suffix is matched case-insensitively
    scale = {str(n): f"level {n}" for n in range(1, 6)}
    path.write_text(json.dumps({"criteria": ["Correct."], "scale": scale}), encoding="utf-8")
    rubric = load_rubric(path)
    assert isinstance(rubric, Rubric)
    assert rubric.scale == {n: f"level {n}" for n in range(1, 6)}
    assert rubric.pass_score == 4  # the default


def test_a_partial_rubric_keeps_the_default_scale(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yml"
    path.write_text("criteria: [Short, Polite]\n", encoding="utf-8")
    rubric = load_rubric(path)
    assert isinstance(rubric, Rubric)
    assert rubric.criteria == ["Short", "Polite"]
    assert set(rubric.scale) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("name", ["rubric.md", "rubric.txt", "RUBRIC"])
def test_other_files_are_free_text(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("\n# Judge by\nBe concise: one sentence.\n\n", encoding="utf-8")
    assert load_rubric(path) == "# Judge by\nBe concise: one sentence."


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_bytes("\ufeffdescription: Short.\n".encode())
    rubric = load_rubric(path)
    assert isinstance(rubric, Rubric) and rubric.description == "Short."


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_rubric(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    return message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("r.md", "", "is empty"),
        ("r.txt", "  \n\t\n", "is empty"),
        ("r.yaml", "# only a comment\n", "is empty"),
        ("r.yaml", "criteria:\n  - one\n two: [\n", "not valid YAML at line 3"),
        ("r.yaml", "description: ok\ncriteria: [a, b\n", "not valid YAML at line 3"),
        ("r.json", '{\n  "criteria": ["a"],\n  "pass_score": 4,\n}\n', "not valid JSON at line 4"),
        ("r.yaml", "- a criterion\n- another\n", "must hold a mapping with the keys"),
        ("r.yaml", "just a sentence\n", "not a string (for a free-text rubric use a .md"),
        ("r.yaml", "criterion: [a]\n", "unknown key 'criterion': did you mean 'criteria'?"),
        ("r.yaml", "weights: [1]\n", "unknown key 'weights': the keys are description, crit"),
        ("r.yaml", "criteria: [a]\npass_score: 7\n", "'pass_score' must be an integer from 1 to 5"),
        ("r.yaml", "criteria: [a]\npass_score: high\n", "(got 'high')"),
        ("r.yaml", "criteria: Be short.\n", "'criteria' must be a list of strings"),
        ("r.yaml", "criteria: [a, [b]]\n", "'criteria' item 2 must be a string"),
        ("r.yaml", "description: [a]\n", "'description' must be a string"),
        ("r.yaml", "criteria: [a]\nscale: {1: bad, 5: good}\n", "exactly the scores 1 to 5"),
        ("r.yaml", "criteria: [a]\nscale: {x: bad}\n", "'scale' keys must be the scores 1 to 5"),
        (
            "r.yaml",
            "criteria: [a]\nscale: {1: a, 2: b, 3: c, 4: d, 5: 5}\n",
            "'scale' entry 5 must be a string",
        ),
        ("r.yaml", "pass_score: 3\n", "says nothing to judge by"),
        ("r.json", "{}", "says nothing to judge by"),
    ],
)
def test_broken_rubric_files(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert expected in _error(path)


def test_a_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.yaml")
    assert message.startswith("rubric file not found:")
    assert "check the path" in message


def test_a_directory(tmp_path: Path) -> None:
    assert "is a directory" in _error(tmp_path)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.md"
    path.write_bytes("Soyez concis, s'il vous plaît".encode("latin-1"))
    message = _error(path)
    assert "is not UTF-8 text" in message
    assert "save it as UTF-8" in message


def test_a_file_without_read_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI runs as root, which reads any file whatever its mode, so the refusal is simulated.
    path = tmp_path / "r.yaml"
    path.write_text("criteria: [a]\n", encoding="utf-8")

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    assert "permission denied" in _error(path)


def test_read_text_file_names_what_it_reads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^reference file not found: .*missing\.txt"):
        read_text_file(tmp_path / "missing.txt", "reference file")
