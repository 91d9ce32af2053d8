"""The eval's report: JSON lines that survive an interrupted write, a table, a real PNG."""

from __future__ import annotations

import json

import pytest

from council_agents.evals.report import (
    PLOT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    _labels,
    append_result,
    markdown_summary,
    read_results,
    write_report,
    write_results,
)
from council_agents.evals.stats import summarize


def record(task: str, strategy: str, passed: bool, completion: int = 120) -> dict:
    return {
        "task_id": task,
        "strategy": strategy,
        "passed": passed,
        "status": "passed" if passed else "failed",
        "reason": "" if passed else "line 3",
        "prompt_tokens": 80,
        "cached_tokens": 0,
        "completion_tokens": completion,
        "llm_calls": 1,
        "wall_s": 1.5,
    }


RESULTS = [record(f"HumanEval/{82 + i}", "single", i % 4 == 0) for i in range(8)] + [
    record(f"HumanEval/{82 + i}", "vote", i % 2 == 0, 360) for i in range(8)
]


def test_results_round_trip_and_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / RESULTS_FILE
    for row in RESULTS[:3]:
        append_result(path, row)
    with path.open("a") as out:
        out.write('{"task_id": "HumanEval/85", "stra')  # the eval was killed mid-write
    assert read_results(path) == RESULTS[:3]
    assert read_results(tmp_path / "missing.jsonl") == []


def test_a_broken_line_in_the_middle_is_an_error_naming_it(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text(json.dumps(RESULTS[0]) + "\nnot json\n" + json.dumps(RESULTS[1]) + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl:2"):
        read_results(path)


def test_markdown_summary_has_a_row_per_strategy_with_interval_and_mcnemar():
    table = markdown_summary(summarize(RESULTS), title="HumanEval test, first 8")
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| single") or line.startswith("| vote")
    ]
    assert len(rows) == 2
    assert "| 25.0 % |" in rows[0] and "| — |" in rows[0]
    assert "| 50.0 % |" in rows[1] and "+25.0 pts (2 won / 0 lost, p = 0.5)" in rows[1]
    assert "vs single (McNemar)" in table and table.startswith("## HumanEval test, first 8")


def test_write_report_writes_the_table_and_a_png(tmp_path):
    write_results(tmp_path / RESULTS_FILE, RESULTS)
    summaries = write_report(read_results(tmp_path / RESULTS_FILE), tmp_path)
    assert [s["strategy"] for s in summaries] == ["single", "vote"]
    assert "| vote |" in (tmp_path / SUMMARY_FILE).read_text()
    png = (tmp_path / PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_plot_labels_share_a_point_and_lift_over_a_crowded_neighbour() -> None:
    rows = [record("HumanEval/0", "single", False, completion=160)]
    rows += [record("HumanEval/0", "vote", False, completion=630)]
    rows += [record("HumanEval/0", "oracle@3", False, completion=630)]
    rows += [record("HumanEval/0", "council1", False, completion=7000)]
    summaries = summarize(rows, "single")
    labels = _labels(summaries, lambda s: s["completion_tokens_per_problem"], 8400.0)
    assert [(names, lift) for _, names, lift in labels] == [
        ("single", 0),
        ("vote, oracle@3", 10),  # same point: one label; 470 tokens from single: lifted
        ("council1", 0),
    ]
