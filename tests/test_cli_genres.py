"""`gcdance genres`: listing, classification, JSON output and exit codes."""

from __future__ import annotations

import json

import pytest

from gcdance.cli import main
from gcdance.conditioning.genres import REGISTRY


def test_list(capsys) -> None:
    assert main(["genres"]) == 0
    out = capsys.readouterr().out
    assert all(g.name in out for g in REGISTRY)
    assert "k-pop" in out and "[gJB]" in out


def test_list_json_one_dataset(capsys) -> None:
    assert main(["genres", "--json", "--dataset", "aistpp"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["aistpp"]
    assert [g["code"] for g in data["aistpp"]][:2] == ["gBR", "gPO"]


def test_classify_exact_alias(capsys) -> None:
    assert main(["genres", "--classify", "Hip-Hop", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["genre"] == "Hiphop" and data["genre_id"] == 3 and data["exact_match"]
    assert data["probabilities"]["Hiphop"] == 1.0


def test_classify_free_text(capsys) -> None:
    assert main(["genres", "--classify", "smooth waves and robotic hits", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Popping") and "classifier P" in lines[0]
    assert len(lines) == 4
    assert main(["genres", "--classify", "fast arm whips and diva poses to disco",
                 "--dataset", "aistpp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["genre"] == "Waack" and not data["exact_match"]
    assert sum(data["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_errors_exit_2_with_a_message(capsys) -> None:
    assert main(["genres", "--classify", "   "]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    assert main(["genres", "--classify", "jazz", "--dataset", "all"]) == 2
    assert "one dataset" in capsys.readouterr().err
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["genres", "--dataset", "mars"])
    assert exc.value.code == 2
