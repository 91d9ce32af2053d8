"""A comparison's output: ``results.jsonl`` (one line per task, written as each finishes), then
``summary.md`` (per task and overall), ``summary.json`` (the overall figures) and
``compare.png`` (wins, ties and losses; tokens and wall time per prompt set).

Overall: wins, ties and losses of the candidate; its win rate among the decided tasks (ties
left out) with a 95 % Wilson interval and the two-sided exact sign test (``evals.stats``); the
share of tasks whose two judgement orders disagreed (a judge swayed by the order); and tokens,
calls and wall time per task of each prompt set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from council_agents.evals.results import (
    ComparisonSummary,
    SetSummary,
    Side,
    TaskComparison,
)
from council_agents.evals.stats import sign_test, wilson_interval

SUMMARY_FILE = "summary.md"
SUMMARY_JSON = "summary.json"
PLOT_FILE = "compare.png"


def latest(records: Iterable[TaskComparison]) -> list[TaskComparison]:
    """One record per task (the last one: a resumed comparison may have written it again)."""
    by_task: dict[str, TaskComparison] = {}
    for record in records:
        by_task[record["task_id"]] = record
    return list(by_task.values())


def _set_summary(records: Sequence[TaskComparison], side: Side, prompts_dir: str) -> SetSummary:
    rows = [r[side] for r in records]
    n = max(1, len(rows))
    return SetSummary(
        side=side,
        prompts_dir=prompts_dir,
        prompt_sets=sorted({r["prompt_set"] for r in rows if r["prompt_set"]}),
        failed=sum(1 for r in rows if r["status"] != "completed"),
        prompt_tokens_per_task=sum(r["prompt_tokens"] for r in rows) / n,
        completion_tokens_per_task=sum(r["completion_tokens"] for r in rows) / n,
        llm_calls_per_task=sum(r["llm_calls"] for r in rows) / n,
        wall_s_per_task=sum(r["wall_s"] for r in rows) / n,
    )


def summarize(
    records: Iterable[TaskComparison], baseline_dir: str, candidate_dir: str
) -> ComparisonSummary:
    """The comparison's overall figures."""
    rows = latest(records)
    wins = sum(1 for r in rows if r["outcome"] == "win")
    losses = sum(1 for r in rows if r["outcome"] == "loss")
    decided = wins + losses
    low, high = wilson_interval(wins, decided) if decided else (None, None)
    disagree = sum(1 for r in rows if r["orders_disagree"])
    return ComparisonSummary(
        tasks=len(rows),
        wins=wins,
        ties=len(rows) - decided,
        losses=losses,
        win_rate=wins / decided if decided else None,
        ci_low=low,
        ci_high=high,
        sign_test_p=sign_test(wins, losses),
        orders_disagree=disagree,
        disagreement_share=disagree / len(rows) if rows else 0.0,
        sets=[
            _set_summary(rows, "baseline", baseline_dir),
            _set_summary(rows, "candidate", candidate_dir),
        ],
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _verdicts(record: TaskComparison) -> str:
    if not record["verdicts"]:
        return record["note"] or "—"
    return " / ".join(v["preferred"] for v in record["verdicts"])


def markdown(records: Sequence[TaskComparison], summary: ComparisonSummary, title: str) -> str:
    """The per-task table, the overall figures and the cost of each prompt set."""
    rows = latest(records)
    lines = [f"## {title}", ""] if title else []
    lines += [
        "| task | role | baseline winner | candidate winner | preferred (baseline shown first "
        "/ candidate shown first) | orders disagree | outcome for the candidate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task_id']} | {r['role']} | {r['baseline']['winner'] or 'failed'} "
            f"| {r['candidate']['winner'] or 'failed'} | {_verdicts(r)} "
            f"| {'yes' if r['orders_disagree'] else 'no'} | {r['outcome']} |"
        )
    s = summary
    interval = f"{_pct(s['ci_low'])} – {_pct(s['ci_high'])}" if s["win_rate"] is not None else "—"
    lines += [
        "",
        f"**Candidate against baseline, {s['tasks']} task(s): {s['wins']} won, {s['ties']} "
        f"tied, {s['losses']} lost.** Win rate among decided tasks: {_pct(s['win_rate'])} "
        f"(95 % Wilson interval {interval}); sign test p = {s['sign_test_p']:.3g}. "
        f"The two judgement orders disagreed on {s['orders_disagree']} of {s['tasks']} "
        f"task(s) ({_pct(s['disagreement_share'])}).",
        "",
        "| prompt set | directory | digest(s) | failed deliberations | prompt tok / task "
        "| completion tok / task | LLM calls / task | wall s / task |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in s["sets"]:
        lines.append(
            f"| {x['side']} | `{x['prompts_dir']}` | {', '.join(x['prompt_sets']) or '—'} "
            f"| {x['failed']} | {x['prompt_tokens_per_task']:.0f} "
            f"| {x['completion_tokens_per_task']:.0f} | {x['llm_calls_per_task']:.1f} "
            f"| {x['wall_s_per_task']:.1f} |"
        )
    lines += [
        "",
        "Each task is deliberated by the same council with each prompt set; the two winners are "
        "judged pairwise twice, in both orders, under neutral labels. Won: the candidate's "
        "winner preferred in both orders; lost: the baseline's in both; anything else is a tie "
        "(so are the orders' disagreements). Win rate: won / (won + lost). Sign test: two-sided "
        "exact binomial test of won against lost. Tokens, calls and wall time: the "
        "deliberations' own (the pairwise judge's are not charged to either set).",
    ]
    return "\n".join(lines) + "\n"


def plot(summary: ComparisonSummary, path: Path, title: str) -> Path:
    """A PNG: wins, ties and losses (with the win rate's interval), and each prompt set's
    tokens and wall time per task.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4.3), dpi=120)
    FigureCanvasAgg(figure)
    left, middle, right = figure.subplots(1, 3)
    counts = [summary["wins"], summary["ties"], summary["losses"]]
    bars = left.bar(["won", "tied", "lost"], counts, color=["#3a7", "#bbb", "#c55"])
    left.bar_label(bars)
    rate = summary["win_rate"]
    interval = (
        f"win rate {_pct(rate)} [{_pct(summary['ci_low'])}, {_pct(summary['ci_high'])}]"
        if rate is not None
        else "no decided task"
    )
    left.set_title(f"candidate vs baseline\n{interval}", fontsize=9)
    left.set_ylabel("tasks")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    sides = [x["side"] for x in summary["sets"]]
    prompt = [x["prompt_tokens_per_task"] for x in summary["sets"]]
    completion = [x["completion_tokens_per_task"] for x in summary["sets"]]
    middle.bar(sides, prompt, label="prompt")
    middle.bar(sides, completion, bottom=prompt, label="completion")
    middle.set_title("tokens per task", fontsize=9)
    middle.legend(fontsize=8)
    right.bar(sides, [x["wall_s_per_task"] for x in summary["sets"]], color="#579")
    right.set_title("wall s per task", fontsize=9)
    figure.suptitle(title.replace("; ", "\n", 1), fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    return path


def write_report(
    records: Sequence[TaskComparison],
    out_dir: Path,
    *,
    baseline_dir: str,
    candidate_dir: str,
    title: str,
) -> ComparisonSummary:
    """Write ``summary.md``, ``summary.json`` and the plot into ``out_dir``; the summary."""
    summary = summarize(records, baseline_dir, candidate_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).write_text(markdown(records, summary, title), encoding="utf-8")
    (out_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if summary["tasks"]:
        plot(summary, out_dir / PLOT_FILE, title)
    return summary
