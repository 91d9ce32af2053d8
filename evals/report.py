"""An eval's output: JSON lines per (problem, strategy), a Markdown summary, a PNG plot.

``results.jsonl`` is appended to as problems finish, so an interrupted eval keeps what it did
(:func:`read_results` reads it back; a torn last line is skipped). ``summary.md`` and
``pass_vs_tokens.png`` are written from it at the end. The plot needs matplotlib (extra
``council[eval]``); it draws on the Agg canvas directly and never touches pyplot's global state,
so it works without a display and inside a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from council_agents.evals.results import ProblemResult, StrategySummary
from council_agents.evals.stats import paired, summarize

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.md"
PLOT_FILE = "pass_vs_tokens.png"


def append_result(path: Path, result: ProblemResult) -> None:
    """Append one record to a JSON-lines file (one line, flushed at once)."""
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(result, ensure_ascii=False) + "\n")


def read_results(path: Path) -> list[ProblemResult]:
    """The records of a JSON-lines file; a missing file is empty, a torn last line is skipped."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # written while the eval was stopped: re-run that problem
                continue
            raise ValueError(f"{path}:{number}: not a JSON line") from None
    return rows


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _versus(summary: StrategySummary) -> str:
    compare = summary["vs_baseline"]
    if compare is None:
        return "—"
    sign = "+" if compare["difference"] >= 0 else "−"
    return (
        f"{sign}{100 * abs(compare['difference']):.1f} pts "
        f"({compare['only_strategy']} won / {compare['only_baseline']} lost, "
        f"p = {compare['p_value']:.3g})"
    )


def markdown_summary(summaries: Sequence[StrategySummary], title: str = "") -> str:
    """A Markdown table: pass@1 with its 95 % interval, tokens, calls and time per problem."""
    baseline = next((s["vs_baseline"]["baseline"] for s in summaries if s["vs_baseline"]), None)
    lines = [f"## {title}", ""] if title else []
    lines += [
        "| strategy | problems | passed | no answer | pass@1 | 95 % CI | completion tok / problem "
        "| prompt tok / problem | cached tok / problem | LLM calls / problem | wall s / problem "
        f"| pass@1 per 1k completion tok | vs {baseline or 'baseline'} (McNemar) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        per_1k = s["pass_per_1k_completion_tokens"]
        lines.append(
            f"| {s['strategy']} | {s['problems']} | {s['passed']} | {s['unanswered']} "
            f"| {_pct(s['pass_at_1'])} "
            f"| {_pct(s['ci_low'])} – {_pct(s['ci_high'])} "
            f"| {s['completion_tokens_per_problem']:.0f} | {s['prompt_tokens_per_problem']:.0f} "
            f"| {s['cached_tokens_per_problem']:.0f} | {s['llm_calls_per_problem']:.1f} "
            f"| {s['wall_s_per_problem']:.1f} | {'—' if per_1k is None else f'{per_1k:.3f}'} "
            f"| {_versus(s)} |"
        )
    lines += [
        "",
        "pass@1: share of problems whose chosen answer passed all tests. No answer: problems "
        "where an agent's answers or the deliberation failed for good (counted as failed). "
        "95 % CI: Wilson "
        "score interval. McNemar: two-sided exact test on the problems both strategies ran "
        "(won / lost: problems only this strategy / only the baseline passed).",
    ]
    return "\n".join(lines) + "\n"


def reachable_gain(summaries: Sequence[StrategySummary], baseline: str = "single") -> str:
    """How much of the gain an oracle shows possible (``oracle@N`` minus ``baseline``) each
    strategy captured, as Markdown lines ("" without an oracle, a baseline or a gain).
    """
    by_name = {s["strategy"]: s for s in summaries}
    oracle = next((s for s in summaries if s["strategy"].startswith("oracle@")), None)
    base = by_name.get(baseline)
    if oracle is None or base is None:
        return ""
    reachable = oracle["pass_at_1"] - base["pass_at_1"]
    if reachable <= 0:
        return (
            f"{oracle['strategy']} is no better than {baseline} here: no selection among "
            "these answers could have gained anything.\n"
        )
    lines = [
        f"Reachable gain ({oracle['strategy']} − {baseline}): {100 * reachable:.1f} pts. "
        "Captured by each strategy:",
        "",
    ]
    for s in summaries:
        if s["strategy"] in (baseline, oracle["strategy"]):
            continue
        captured = (s["pass_at_1"] - base["pass_at_1"]) / reachable
        lines.append(f"- {s['strategy']}: {100 * captured:.0f} %")
    return "\n".join(lines) + "\n"


def prompt_pairs(results: Iterable[ProblemResult]) -> str:
    """``council eval --prompts-dir``: each strategy with the other prompt set against itself
    with the eval's prompts, on the problems both ran (McNemar), as Markdown ("" when no
    strategy ran with another prompt set).
    """
    latest: dict[str, dict[str, bool]] = {}
    for r in results:
        latest.setdefault(r["strategy"], {})[r["task_id"]] = r["passed"]
    lines = []
    for label, outcomes in latest.items():
        base, sep, rest = label.partition(" [prompts ")
        if not sep or base not in latest:
            continue
        pair = paired(latest[base], outcomes, base)
        if pair is None:
            continue
        n = pair["problems"]
        mine = sum(outcomes[t] for t in outcomes if t in latest[base])
        theirs = sum(latest[base][t] for t in latest[base] if t in outcomes)
        lines.append(
            f"| {base} | {rest.rstrip(']')} | {n} | {theirs}/{n} | {mine}/{n} "
            f"| {pair['only_strategy']} | {pair['only_baseline']} | {pair['p_value']:.3g} |"
        )
    if not lines:
        return ""
    return (
        "\n".join(
            [
                "### Prompt sets, strategy by strategy (McNemar, the same problems)",
                "",
                "| strategy | prompt set | problems | passed with the eval's prompts "
                "| passed with the prompt set | only the prompt set passed | only the eval's "
                "passed | p |",
                "|---|---|---:|---:|---:|---:|---:|---:|",
                *lines,
                "",
                "p: two-sided exact McNemar test on the discordant problems.",
            ]
        )
        + "\n"
    )


def plot_pass_vs_tokens(
    summaries: Sequence[StrategySummary],
    path: Path,
    title: str = "pass@1 against tokens per problem",
) -> Path:
    """A PNG of each strategy's pass@1 (with its 95 % interval) against tokens per problem.

    Left: completion tokens (what generation costs); right: prompt plus completion tokens (what
    a deliberation's long critique prompts add).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2, sharey=True)
    panels_of: list[tuple[Any, str, Callable[[StrategySummary], float]]] = [
        (panels[0], "completion tokens per problem", lambda s: s["completion_tokens_per_problem"]),
        (
            panels[1],
            "prompt + completion tokens per problem",
            lambda s: s["prompt_tokens_per_problem"] + s["completion_tokens_per_problem"],
        ),
    ]
    for axes, label, tokens in panels_of:
        for s in summaries:
            x, y = tokens(s), 100 * s["pass_at_1"]
            error = [[y - 100 * s["ci_low"]], [100 * s["ci_high"] - y]]
            axes.errorbar([x], [y], yerr=error, fmt="o", capsize=4, label=s["strategy"])
        width = 1.2 * max([tokens(s) for s in summaries] + [1.0])  # room for the labels
        for (x, y), names, lift in _labels(summaries, tokens, width):
            axes.annotate(
                names, (x, y), textcoords="offset points", xytext=(6, 4 + lift), fontsize=8
            )
        axes.set_xlabel(label)
        axes.set_xlim(0, width)
        axes.grid(True, alpha=0.3)
    panels[0].set_ylabel("pass@1 (%), 95 % Wilson interval")
    panels[0].set_ylim(bottom=0)
    if len(summaries) > 1:
        panels[0].legend(fontsize=8)
    problems = sorted({s["problems"] for s in summaries})
    figure.suptitle(f"{title} ({'/'.join(map(str, problems))} problems)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _labels(
    summaries: Sequence[StrategySummary],
    tokens: Callable[[StrategySummary], float],
    width: float,
) -> list[tuple[tuple[float, float], str, int]]:
    """One label per point (strategies on the same point share it: ``vote, oracle@3``), lifted
    in steps of 10 points above a neighbour whose label it would overlap (within 8 % of the
    axis, at a similar height).
    """
    points: dict[tuple[float, float], list[str]] = {}
    for s in summaries:
        points.setdefault((tokens(s), 100 * s["pass_at_1"]), []).append(s["strategy"])
    placed: list[tuple[float, float, int]] = []
    labels = []
    for (x, y), names in sorted(points.items()):
        lift = 0
        while any(
            abs(x - px) < 0.08 * width and abs(y - py) < 3 and lift == plift
            for px, py, plift in placed
        ):
            lift += 10
        placed.append((x, y, lift))
        labels.append(((x, y), ", ".join(names), lift))
    return labels


def write_results(path: Path, results: Iterable[ProblemResult]) -> None:
    """Write records as JSON lines, replacing the file."""
    with path.open("w", encoding="utf-8") as out:
        for result in results:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")


def write_report(
    results: Iterable[ProblemResult], out_dir: Path, baseline: str = "single", title: str = ""
) -> list[StrategySummary]:
    """Write ``summary.md`` and ``pass_vs_tokens.png`` into ``out_dir``; return the summaries.

    The results themselves are expected in ``out_dir / results.jsonl`` already (see
    :func:`append_result`); this only summarises.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results = list(results)
    summaries = summarize(results, baseline)
    gain = reachable_gain(summaries, baseline)
    pairs = prompt_pairs(results)
    text = markdown_summary(summaries, title) + (f"\n{gain}" if gain else "")
    text += f"\n{pairs}" if pairs else ""
    (out_dir / SUMMARY_FILE).write_text(text, encoding="utf-8")
    if summaries:
        plot_pass_vs_tokens(
            summaries, out_dir / PLOT_FILE, title=title or "pass@1 against tokens per problem"
        )
    return summaries
