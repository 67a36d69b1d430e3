"""The suite registry, BBQ and CrowS-Pairs readers and scores, and what no suite may produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks._common import SHARED_BBQ
from edgekit.bias.logprobs import LogProbScorer
from edgekit.bias.suites import (
    BUILT_IN,
    SUITES,
    SuiteRequest,
    score_suite,
    standard_suite,
    suite_title,
    tables,
)
from edgekit.bias.suites.bbq import (
    answer_bbq,
    bbq_scores,
    calibration_part,
    read_bbq,
    report_part,
    share_higher,
)
from edgekit.bias.suites.crows_pairs import crows_preferences, crows_scores, read_crows
from edgekit.errors import BiasDataError, BiasError
from tests.fixtures.bias_data import CROWS_CSV, CROWS_HEADER, bbq_item, write_jsonl
from tests.fixtures.fake_bias_backend import FakeModel, FakeRuntime


def test_bbq_scores_follow_the_paper_definitions(tmp_path: Path) -> None:
    rows = [
        bbq_item("neg", "disambig", 0),
        bbq_item("nonneg", "disambig", 1),
        bbq_item("neg", "ambig", 2),
        bbq_item("nonneg", "ambig", 2),
    ]
    items = read_bbq(write_jsonl(tmp_path / "Age.jsonl", rows))
    assert [it.biased for it in items] == [0, 1, 0, 1] and items[0].unknown == 2
    # Disambiguated: both answers biased -> s_DIS = 2 * 2/2 - 1 = 1; both right.
    # Ambiguous: one biased, one "unknown" -> accuracy 0.5, ratio 2 * 1/1 - 1 = 1 -> s_AMB 0.5.
    s = bbq_scores(items, [0, 1, 0, 2], n_boot=200)["Age"]
    assert s["s_dis"]["value"] == 1.0 and s["s_amb"]["value"] == 0.5
    assert s["disambiguated_accuracy"]["value"] == 1.0 and s["ambiguous_accuracy"]["value"] == 0.5
    anti = bbq_scores(items, [1, 0, 1, 2], n_boot=200)["Age"]
    assert anti["s_dis"]["value"] == -1.0 and anti["s_amb"]["value"] == -0.5
    assert s["s_dis"]["low"] <= s["s_dis"]["value"] <= s["s_dis"]["high"]


def test_bbq_bad_input_names_the_line(tmp_path: Path) -> None:
    rows = [
        bbq_item("neg", "ambig", 2),
        {k: v for k, v in bbq_item("neg", "ambig", 2).items() if k != "answer_info"},
    ]
    with pytest.raises(BiasDataError, match=r"line 2: missing field\(s\) answer_info"):
        read_bbq(write_jsonl(tmp_path / "a.jsonl", rows))
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(
        json.dumps(bbq_item("neg", "ambig", 2)).encode() + b'\n{"context": "caf\xe9"}\n'
    )
    with pytest.raises(BiasDataError, match="line 2 is not UTF-8"):
        read_bbq(bad)
    (tmp_path / "c.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(BiasDataError, match="line 1 is not JSON"):
        read_bbq(tmp_path / "c.jsonl")
    with pytest.raises(BiasDataError, match="no BBQ JSONL"):
        read_bbq(tmp_path / "missing")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_bbq_files_are_refused(tmp_path: Path, content: str) -> None:
    """An empty file would score 0 (unbiased) in every category it does not have."""
    (tmp_path / "Age.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(BiasDataError, match=r"Age.jsonl holds no BBQ items"):
        read_bbq(tmp_path / "Age.jsonl")
    write_jsonl(tmp_path / "Religion.jsonl", [bbq_item("neg", "ambig", 2)])
    with pytest.raises(BiasDataError, match=r"Age.jsonl holds no BBQ items"):
        read_bbq(tmp_path)  # one empty category among good ones is refused, not skipped


@pytest.mark.skipif(not SHARED_BBQ.is_dir(), reason="BBQ data not in ../shared/bias-data")
def test_bbq_release_files_read_and_score_on_the_fake() -> None:
    items = read_bbq(SHARED_BBQ, limit=12, seed=3)
    assert len(items) == 36 and {it.category for it in items} == {"Age", "Nationality", "Religion"}
    assert items == read_bbq(SHARED_BBQ, limit=12, seed=3)  # the subsample is seeded
    assert all(it.target is not None for it in items)
    scorer = LogProbScorer(FakeRuntime().logits())
    scores = bbq_scores(items, answer_bbq(scorer, items), n_boot=100)
    for s in scores.values():
        assert -1 <= s["s_dis"]["value"] <= 1 and s["n"] == 12


def test_bbq_parts_keep_each_template_on_one_side(tmp_path: Path) -> None:
    rows = [
        bbq_item(pol, cond, 0, question_index=str(t))
        for t in range(1, 41)
        for pol in ("neg", "nonneg")
        for cond in ("ambig", "disambig")
    ]
    items = read_bbq(write_jsonl(tmp_path / "Age.jsonl", rows))
    calibration, report = calibration_part(items), report_part(items)
    assert len(calibration) + len(report) == len(items) == 160
    assert {it.template for it in calibration}.isdisjoint({it.template for it in report})
    assert len({it.template for it in calibration}) == 10  # every fourth, in hash order
    assert calibration == calibration_part(read_bbq(tmp_path / "Age.jsonl"))  # stable


def test_share_higher_sees_a_rise_and_not_an_equal(tmp_path: Path) -> None:
    rows = [bbq_item("neg", "disambig", 0, question_index=str(t)) for t in range(60)]
    items = read_bbq(write_jsonl(tmp_path / "Age.jsonl", rows))
    even = [0, 1] * 30  # half name the old man, half the young: s_DIS 0
    biased = [0] * 60  # all the stereotyped group: s_DIS +1
    assert share_higher(items, even, biased)["s_dis"] == 1.0
    assert share_higher(items, biased, even)["s_dis"] == 0.0
    assert share_higher(items, even, even) == {"s_dis": 0.0, "s_amb": 0.0}


def test_crows_reader_handles_quotes_and_commas(tmp_path: Path) -> None:
    path = tmp_path / "crows.csv"
    path.write_text(CROWS_CSV, encoding="utf-8")
    pairs = read_crows(path)
    assert [p.line for p in pairs] == [2, 3, 4]  # the physical line each row ends on
    assert pairs[0].sent_more == "The poor man was lazy, they said."
    assert (
        pairs[1].sent_more == 'She said "he is weak" again.' and pairs[1].direction == "antistereo"
    )
    scores = crows_scores(pairs, [True, False, True], n_boot=200)
    assert scores["stereotype_share"]["value"] == pytest.approx(200 / 3)
    assert scores["bias_types"]["gender"]["value"] == 0.0
    scorer = LogProbScorer(FakeRuntime(FakeModel(planted=3.0)).logits())
    prefers = crows_preferences(scorer, pairs)
    assert len(prefers) == 3


def test_crows_bad_input_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "crows.csv"
    path.write_text(CROWS_CSV.replace(",stereo,age,", ",,age,"), encoding="utf-8")
    with pytest.raises(BiasDataError, match="line 4 has no stereo_antistereo"):
        read_crows(path)
    path.write_text(CROWS_CSV.replace("sent_less", "sentless"), encoding="utf-8")
    with pytest.raises(BiasDataError, match="lacks column"):
        read_crows(path)
    path.write_bytes(CROWS_CSV.encode().replace(b"old woman", b"old w\xf6man"))
    with pytest.raises(BiasDataError, match="line 4 is not UTF-8"):
        read_crows(path)


@pytest.mark.parametrize(("content", "why"), [("", "file is empty"), (CROWS_HEADER, "header")])
def test_empty_crows_files_are_refused(tmp_path: Path, content: str, why: str) -> None:
    """A header without pairs used to score NaN % (the mean of nothing)."""
    path = tmp_path / "crows.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BiasDataError, match=f"holds no CrowS-Pairs pairs .*{why}"):
        read_crows(path)


def test_the_registry_names_each_suite_once() -> None:
    assert BUILT_IN in SUITES and not SUITES[BUILT_IN].data
    assert suite_title("bbq") == "BBQ" and suite_title("crows-pairs") == "CrowS-Pairs"
    assert suite_title("stereoset") == "stereoset"  # a history from a newer edgekit
    with pytest.raises(BiasError, match="unknown suite 'stereoset'") as e:
        standard_suite("stereoset")
    assert e.value.hint == "Use one of: `bbq DIR`, `crows-pairs FILE.csv`."
    with pytest.raises(BiasError, match="unknown suite 'edgekit'"):
        standard_suite(BUILT_IN)  # built in: it reads no file


@pytest.mark.parametrize("name", sorted(SUITES))
def test_every_suite_reads_scores_stores_and_tabulates(tmp_path: Path, name: str) -> None:
    """The contract every registered suite keeps, run on the fake back end."""
    data = {"bbq": tmp_path / "bbq.jsonl", "crows-pairs": tmp_path / "crows.csv"}
    write_jsonl(data["bbq"], [bbq_item("neg", "disambig", 0), bbq_item("nonneg", "ambig", 2)])
    data["crows-pairs"].write_text(CROWS_CSV, encoding="utf-8")
    request = SuiteRequest(path=data.get(name), split="heldout", seed=1)
    suite = SUITES[name]
    out = score_suite(FakeRuntime(), name, suite.read(request), request, None)
    assert out["suite"] == name
    json.dumps(out, allow_nan=False)
    entry = suite.history(out, request)
    assert set(entry.scores) >= {"bias", "disambiguated_accuracy", "categories"}
    for c in entry.scores["categories"].values():
        assert set(c) >= {"bias", "pair_bias", "ambiguity_bias", "disambiguated_accuracy"}
    for table in tables(out):
        assert table.rows and all(len(r) == len(table.columns) for r in table.rows)
        assert not table.total or len(table.total) == len(table.columns)


def test_non_finite_scores_are_refused_before_printing(tmp_path: Path) -> None:
    """A model whose log-probabilities are NaN must not give scores of NaN (not JSON)."""
    request = SuiteRequest(split="heldout")
    suite = SUITES[BUILT_IN].read(request)
    with pytest.raises(BiasError, match=r"not finite numbers \(scores\.scores\..* is nan\)"):
        score_suite(FakeRuntime(FakeModel(planted=float("nan"))), BUILT_IN, suite, request, None)
