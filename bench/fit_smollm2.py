"""The simulator's ``Truth.fitted_smollm2()``: every parameter, and where it comes from.

    python -m bench.fit_smollm2                       # fit from the committed records
    python -m bench.fit_smollm2 --measure --base-url http://127.0.0.1:8080/v1   # probe again

Two sources, both committed under ``docs/eval/``:

* **the eval records** (``smollm2-test/``, ``smollm2-tune/``: ``council eval`` with SmolLM2-135M-
  Instruct on llama.cpp, HumanEval, 3 agents): each ``anatomy.md``'s tables give first-answer
  correctness, what revisions did to the code, and how often each stage's answers were rejected;
* **the probes** (``smollm2-probe/probes.jsonl``): what the records cannot say (a judge's
  position, length and discrimination, a voter's position, what a revision in the new plain-text
  form does, whether critics flag correct code or miss broken code), measured by calling the
  same model through council's own nodes (``nodes.judge``, ``nodes.vote``, ``nodes.revise``,
  ``nodes.critique``) with the eval's prompts and budgets, on HumanEval problems whose
  candidates are of known correctness: the canonical solution, its scripted broken variant
  (``sim_vllm.scripted``) and SmolLM2's own answer from the records. ``--measure`` runs them
  again (about 60 calls; on 2 busy cores with ``llama-server -t 1``, 20-40 minutes) against a
  server that serves the model (``--model``, default llama-server's alias of the eval).

The fit (``fit``) is printed as a table of parameter, value, how it was obtained and the
counts behind it; ``tests/unit/test_sim_truth.py`` checks that ``Truth.fitted_smollm2()`` holds
these values. docs/SIMULATOR.md explains each one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDS = [ROOT / "docs/eval/smollm2-test", ROOT / "docs/eval/smollm2-tune"]
PROBES = ROOT / "docs/eval/smollm2-probe/probes.jsonl"
MODEL_ALIAS = "smollm2-135m-instruct-q4_1"
PERFECT_GAP = 5.0
"""How many points a perfect judge puts between correct and broken code (the scripted
HumanEval judge's 8 against 3): the unit hidden quality is measured in."""

# which problems each probe uses (tune split 0..15 and test split 82..93: the records' problems)
JUDGE_PROBLEMS = [82, 83, 84, 85, 86, 87]
ALONE_PROBLEMS = [0, 1, 2, 3]
VOTE_PROBLEMS = [4, 5, 6, 7]
REVISE_PROBLEMS = [88, 89, 90, 91]
CRITIQUE_PROBLEMS = [8, 9, 10, 11]
PADDING = (
    "\n\nHow it works: the function follows the docstring step by step. It reads the "
    "arguments exactly as the docstring describes them, handles the edge cases the examples "
    "show, and returns the result directly without printing anything. It uses only the "
    "standard library, keeps no state between calls, and does not modify its inputs. Each "
    "branch corresponds to one case of the specification, so a reader can check it against "
    "the examples line by line. The loop visits every element once, so the running time grows "
    "linearly with the size of the input, and the memory it uses is constant apart from the "
    "result. Names follow the docstring's wording so that the code reads like the "
    "specification. The examples in the docstring were traced through the code by hand and "
    "each gives the expected value."
)
"""About 1,000 neutral characters appended after the code (the length probe)."""


# --- the records ---------------------------------------------------------------------------


def tables(markdown: str) -> list[tuple[str, list[dict[str, str]]]]:
    """``(section, rows)`` of every Markdown table, rows by column name; the section is the
    nearest ``###`` heading above it."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    section, lines = "", markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("### "):
            section = line[4:].strip()
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: "):
            head = [c.strip() for c in line.strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(head, cells, strict=True)))
                i += 1
            out.append((section, rows))
            continue
        i += 1
    return out


@dataclass
class Records:
    """What the eval records count, summed over both splits and every council strategy."""

    calls: dict[str, int]
    rejected: dict[str, int]
    first_answers: int
    first_passed: int
    revisions: int
    revisions_defining: int
    rounds: int
    rounds_converged: int


def read_records(dirs: Iterable[Path] = RECORDS) -> Records:
    """The counts of every ``anatomy.md`` and ``results.jsonl`` in ``dirs``."""
    calls: dict[str, int] = {}
    rejected: dict[str, int] = {}
    first = first_passed = revisions = defining = rounds = converged = 0
    for d in dirs:
        for _section, rows in tables((d / "anatomy.md").read_text()):
            for row in rows:
                if "stage" in row:
                    calls[row["stage"]] = calls.get(row["stage"], 0) + int(row["calls"])
                    rejected[row["stage"]] = rejected.get(row["stage"], 0) + int(row["rejected"])
                elif row.get("draft") == "first answer":
                    first += int(row["drafts"])
                    first_passed += int(row["pass the tests"])
                elif row.get("draft", "").startswith("revision"):
                    revisions += int(row["drafts"])
                    defining += int(row["define the function"])
        for line in (d / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r.get("rounds"):
                rounds += 1
                converged += r.get("stop_reason") == "converged"
    return Records(calls, rejected, first, first_passed, revisions, defining, rounds, converged)


# --- the probes ----------------------------------------------------------------------------


async def measure(base_url: str, model: str, out: Path, only: Sequence[str] = ()) -> None:
    """Run every probe (or ``only`` those named) against ``base_url`` through council's own
    nodes; append each result to ``out`` (one JSON line per call or task) as it comes."""
    from council_agents.core.request import admit
    from council_agents.core.settings import LLMSettings, Settings
    from council_agents.core.state import Critique, CritiqueTask, ReviseTask, ShowTask
    from council_agents.evals.harness import eval_input, eval_settings
    from council_agents.evals.humaneval import load_problems
    from council_agents.evals.sandbox import score_answer
    from council_agents.evals.strategies import STRATEGIES
    from council_agents.llm.client import LLM
    from council_agents.llm.stage import brief
    from council_agents.nodes.critique import critique
    from council_agents.nodes.judge import judge
    from council_agents.nodes.revise import revise
    from council_agents.nodes.vote import vote
    from council_agents.sim_vllm.humaneval import critique_doc
    from council_agents.sim_vllm.scripted import answer_text, broken_kind_for

    settings = eval_settings(
        Settings(llm=LLMSettings(base_url=base_url, model=model, timeout_s=1800))
    )
    llm = LLM(settings.llm)
    problems = {p["index"]: p for p in load_problems("all")}
    smol = own_answers()
    strategy = STRATEGIES["council1"]
    out.parent.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(2)  # llama-server's two slots

    def council_for(index: int) -> Any:
        inp = eval_input(problems[index], strategy)
        return admit(inp, {"agents": 3}, None, settings.llm)["council"]

    def base(index: int, agent: Any, stage: str) -> dict[str, Any]:
        council = council_for(index)
        return {
            "deliberation_id": f"probe-{stage}-{index}",
            "task": council_task(index),
            "council": brief(council),
            "agent": {**agent, "model": model},
            "round": 1,
            "max_tokens": council["max_tokens"][stage],
            "token_cap": None,
        }

    def council_task(index: int) -> str:
        from council_agents.evals.humaneval import task_text

        return task_text(problems[index])

    def candidates(index: int) -> dict[str, str]:
        p = problems[index]
        return {
            "cand-c1": answer_text(p, True),
            "cand-b2": answer_text(p, False, broken_kind_for(p)),
            "cand-s3": smol.get(p["task_id"], answer_text(p, False, "raise")),
        }

    def write(row: dict[str, Any]) -> None:
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "calls"})[:300], flush=True)

    def attempts(update: Any) -> list[dict[str, Any]]:
        return [
            {
                "accepted": c["accepted"],
                "problem": c.get("problem"),
                "finish": c["finish_reason"],
                "completion_tokens": c["completion_tokens"],
                "content": c.get("content", "")[:4000],
            }
            for c in update.get("calls", [])
        ]

    async def judged(probe: str, index: int, order: list[str], texts: dict[str, str]) -> None:
        council = council_for(index)
        task = ShowTask(
            **base(index, council["judge"], "judge"),  # type: ignore[typeddict-item]
            order=order,
            proposals={a: texts[a] for a in order},
        )
        async with gate:
            t0 = time.perf_counter()
            update = await judge(task, llm=llm)
        js = update.get("judgements", [])
        write(
            {
                "probe": probe,
                "problem": index,
                "order": order,
                "chars": {a: len(texts[a]) for a in order},
                "totals": js[0]["totals"] if js else None,
                "scores": {a: s["scores"] for a, s in js[0]["assessments"].items()} if js else None,
                "omitted": not js,
                "wall_s": round(time.perf_counter() - t0, 1),
                "calls": attempts(update),
            }
        )

    async def voted(index: int, order: list[str], texts: dict[str, str]) -> None:
        council = council_for(index)
        task = ShowTask(
            **base(index, council["agents"][0], "vote"),  # type: ignore[typeddict-item]
            order=order,
            proposals={a: texts[a] for a in order},
        )
        async with gate:
            update = await vote(task, llm=llm)
        ballots = update.get("ballots", [])
        write(
            {
                "probe": "vote",
                "problem": index,
                "order": order,
                "ranking": ballots[0]["ranking"] if ballots else None,
                "omitted": not ballots,
                "calls": attempts(update),
            }
        )

    async def revised(index: int, correct: bool) -> None:
        p = problems[index]
        council = council_for(index)
        previous = answer_text(p, correct, broken_kind_for(p))
        doc = critique_doc(False)  # a blocker: true for broken code, false for correct code
        crit = Critique(
            round=1,
            critic="agent-dev-002",
            author="agent-dev-001",
            summary=doc["summary"],
            defects=doc["defects"],
            violations=[],
        )
        task = ReviseTask(
            **base(index, council["agents"][0], "revise"),  # type: ignore[typeddict-item]
            proposal=previous,
            critiques=[crit],
        )
        async with gate:
            update = await revise(task, llm=llm)
        draft = update["drafts"][0]
        after = None
        if not draft.get("carried") or draft["content"] != previous:
            after = (await score_answer(p, draft["content"])).passed
        calls = attempts(update)
        write(
            {
                "probe": "revise",
                "problem": index,
                "before_correct": correct,
                "carried": draft.get("carried"),
                "after_correct": after,
                "omitted": bool(update.get("omissions")),
                "calls": calls,
            }
        )

    async def critiqued(index: int, correct: bool) -> None:
        p = problems[index]
        council = council_for(index)
        task = CritiqueTask(
            **base(index, council["agents"][1], "critique"),  # type: ignore[typeddict-item]
            author="agent-dev-001",
            proposal=answer_text(p, correct, broken_kind_for(p)),
        )
        async with gate:
            update = await critique(task, llm=llm)
        crits = update.get("critiques", [])
        severities = [d["severity"] for d in crits[0]["defects"]] if crits else None
        write(
            {
                "probe": "critique",
                "problem": index,
                "correct": correct,
                "severities": severities,
                "omitted": not crits,
                "calls": attempts(update),
            }
        )

    jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    for index in JUDGE_PROBLEMS:  # three candidates in every rotation of one shuffled order
        texts = candidates(index)
        order = sorted(texts)
        random.Random(index).shuffle(order)
        for k in range(3):
            shown = order[k:] + order[:k]
            jobs.append(("rotations", partial(judged, "rotations", index, shown, texts)))
    for index in ALONE_PROBLEMS:  # each alone: correct, correct with padding, broken
        texts = candidates(index)
        texts["cand-p4"] = texts["cand-c1"] + PADDING
        for a in ("cand-c1", "cand-p4", "cand-b2"):
            jobs.append(("alone", partial(judged, "alone", index, [a], texts)))
        for shown in (["cand-c1", "cand-p4"], ["cand-p4", "cand-c1"]):  # together: both orders
            jobs.append(("lengths", partial(judged, "lengths", index, shown, texts)))
    for index in VOTE_PROBLEMS:  # correct against broken, in both orders
        texts = candidates(index)
        jobs.append(("vote", partial(voted, index, ["cand-c1", "cand-b2"], texts)))
        jobs.append(("vote", partial(voted, index, ["cand-b2", "cand-c1"], texts)))
    for index in REVISE_PROBLEMS:  # a true blocker on broken code, a false one on correct code
        jobs += [("revise", partial(revised, index, c)) for c in (False, True)]
    for index in CRITIQUE_PROBLEMS:
        jobs += [("critique", partial(critiqued, index, c)) for c in (True, False)]
    await asyncio.gather(*(job() for name, job in jobs if not only or name in only))


def own_answers() -> dict[str, str]:
    """SmolLM2's ``single`` answer to each problem of the records, by task id."""
    out = {}
    for d in RECORDS:
        for line in (d / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r["strategy"] == "single" and r.get("answer"):
                out[r["task_id"]] = r["answer"]
    return out


# --- the fit -------------------------------------------------------------------------------


@dataclass
class Fitted:
    """One parameter: its value, how it was obtained, the counts behind it."""

    name: str
    value: float
    how: str
    counts: str


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95 % interval of ``k`` successes in ``n``."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} ({lo:.0%}-{hi:.0%})"


def probit(p: float) -> float:
    """The standard normal quantile of ``p``."""
    return statistics.NormalDist().inv_cdf(min(max(p, 1e-6), 1 - 1e-6))


def read_probes(path: Path = PROBES) -> list[dict[str, Any]]:
    """The probes' rows (none when the file is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fit(records: Records, probes: list[dict[str, Any]]) -> list[Fitted]:
    """Every fitted parameter of ``Truth.fitted_smollm2()``."""
    out: list[Fitted] = []
    probed = {
        "judge": ("rotations", "alone"),
        "vote": ("vote",),
        "critique": ("critique",),
        "revise": ("revise",),
    }
    for stage in ("propose", "critique", "revise", "judge", "vote"):
        recorded = share(records.rejected[stage], records.calls[stage])
        tried = [c for p in probes if p["probe"] in probed.get(stage, ()) for c in p["calls"]]
        bad = [c for c in tried if not c["accepted"] and not _drops(c["problem"])]
        if stage in probed and tried:
            how = "probe: attempts rejected (not for dropping content) / attempts"
            value, counts = len(bad) / len(tried), f"{share(len(bad), len(tried))}; records"
            counts += f" (the eval's protocol, before answers were sized per endpoint): {recorded}"
        else:
            how = "records: rejected attempts / attempts (anatomy.md)"
            value, counts = records.rejected[stage] / records.calls[stage], recorded
        out.append(Fitted(f"invalid[{stage}]", round(value, 3), how, counts))
    out.append(
        Fitted(
            "humaneval correct",
            round(records.first_passed / records.first_answers, 3),
            "records: first answers that pass the tests",
            share(records.first_passed, records.first_answers),
        )
    )
    out += _fit_revisions(records, [p for p in probes if p["probe"] == "revise"])
    out += _fit_critics(records, [p for p in probes if p["probe"] == "critique"])
    out += _fit_judges([p for p in probes if p["probe"] in ("rotations", "alone", "lengths")])
    out += _fit_voters([p for p in probes if p["probe"] == "vote"])
    return out


def _fit_revisions(records: Records, rows: list[dict[str, Any]]) -> list[Fitted]:
    tried = [c for r in rows for c in r["calls"]]
    dropped = [c for c in tried if not c["accepted"] and _drops(c["problem"])]
    unchanged = [r for r in rows if r["carried"] == "unchanged"]  # an accepted attempt each
    kept = [r for r in rows if r["after_correct"] is not None]
    broke = [r for r in kept if r["before_correct"] and not r["after_correct"]]
    from_correct = [r for r in kept if r["before_correct"]]
    fixed = [r for r in kept if not r["before_correct"] and r["after_correct"]]
    from_broken = [r for r in kept if not r["before_correct"]]
    accepted = 1 - (len(dropped) + len(unchanged)) / len(tried) if tried else 1.0
    return [
        Fitted(
            "revise_drop",
            round(len(dropped) / len(tried), 3) if tried else 0.0,
            "probe: revision attempts refused for dropping the code (checks.artifact)",
            share(len(dropped), len(tried))
            + f"; records (old JSON form): {records.revisions - records.revisions_defining}"
            f"/{records.revisions} accepted revisions define no function",
        ),
        Fitted(
            "revise_unchanged",
            round(len(unchanged) / len(tried), 3) if tried else 0.0,
            "probe: revision attempts answered UNCHANGED",
            share(len(unchanged), len(tried)),
        ),
        Fitted(
            "revise_break",
            round(accepted * len(broke) / len(from_correct), 3) if from_correct else 0.0,
            "probe: per attempt, the share accepted (1 - revise_drop - revise_unchanged) x the "
            "share of accepted revisions of correct code that fail the tests",
            share(len(broke), len(from_correct)),
        ),
        Fitted(
            "humaneval fix",
            round(len(fixed) / len(from_broken), 3) if from_broken else 0.0,
            "probe: accepted revisions of broken code that pass the tests",
            share(len(fixed), len(from_broken))
            + f"; records: 0/{records.revisions} revisions pass",
        ),
    ]


def _drops(problem: str | None) -> bool:
    return bool(problem) and "revision" in str(problem)


def _fit_critics(records: Records, rows: list[dict[str, Any]]) -> list[Fitted]:
    def severe(r: dict[str, Any]) -> bool:
        return any(s in ("blocker", "major") for s in r["severities"] or [])

    on_correct = [r for r in rows if r["correct"] and not r["omitted"]]
    on_broken = [r for r in rows if not r["correct"] and not r["omitted"]]
    false = sum(severe(r) for r in on_correct)
    missed = sum(not severe(r) for r in on_broken)
    return [
        Fitted(
            "critic_false",
            round(false / len(on_correct), 3) if on_correct else 0.0,
            "probe: critiques of correct code with a blocker or major defect",
            share(false, len(on_correct)),
        ),
        Fitted(
            "critic_miss",
            round(missed / len(on_broken), 3) if on_broken else 0.0,
            "probe: critiques of broken code without a blocker or major defect",
            share(missed, len(on_broken))
            + f"; records: {records.rounds_converged}/{records.rounds} rounds of wrong code "
            "converged",
        ),
    ]


def _fit_judges(rows: list[dict[str, Any]]) -> list[Fitted]:
    """The rotations of three candidates form a 3 x 3 Latin square per problem (judgement x
    candidate, each candidate once in each position), so a judge's totals split into the
    judgement's shift, the candidate's effect, the position's effect and a residual, each
    estimated on its own. The same correct code with and without padding, judged together in
    both orders, gives the length preference; the pointwise probe the gap a judge puts between
    correct and broken code it sees alone."""
    rot = [r for r in rows if r["probe"] == "rotations" and r["totals"]]
    by_problem: dict[int, list[dict[str, Any]]] = {}
    for r in rot:
        by_problem.setdefault(r["problem"], []).append(r)
    full = {p: rs for p, rs in by_problem.items() if len(rs) == 3}
    place = ("first", "middle", "last")
    position: dict[str, list[float]] = {k: [] for k in place}
    shifts: list[float] = []
    residual_sq = 0.0
    gaps: list[float] = []
    for rs in full.values():
        cands = sorted(rs[0]["totals"])
        cell = {(j, a): r["totals"][a] for j, r in enumerate(rs) for a in cands}
        where = {(j, a): place[r["order"].index(a)] for j, r in enumerate(rs) for a in cands}
        grand = statistics.fmean(cell.values())
        shift = {j: statistics.fmean(cell[(j, a)] for a in cands) - grand for j in range(3)}
        effect = {a: statistics.fmean(cell[(j, a)] for j in range(3)) - grand for a in cands}
        pos = {
            k: statistics.fmean(v for c, v in cell.items() if where[c] == k) - grand for k in place
        }
        for k in place:
            position[k].append(pos[k])
        shifts += shift.values()
        residual_sq += sum(
            (v - grand - shift[j] - effect[a] - pos[where[(j, a)]]) ** 2
            for (j, a), v in cell.items()
        )
        gaps.append(effect["cand-c1"] - effect["cand-b2"])
    n = len(full)
    bonus = {k: statistics.fmean(v) if v else 0.0 for k, v in position.items()}
    noise = math.sqrt(residual_sq / (2 * n)) if n else 0.0  # 2 residual dof per square
    # a judgement's mean carries a third of the residual variance
    calibration = (
        math.sqrt(max(0.0, sum(x * x for x in shifts) / (2 * n) - noise**2 / 3)) if n else 0.0
    )
    gap = statistics.fmean(gaps) if gaps else 0.0
    skill = max(0.0, gap / PERFECT_GAP)
    spread = statistics.variance(gaps) if len(gaps) > 1 else 0.0
    shared = math.sqrt(max(0.0, spread - 2 * noise * noise / 3) / 2)
    perception = shared / skill if skill >= 0.05 else 0.0

    alone = [r for r in rows if r["probe"] == "alone" and r["totals"]]
    total = {(r["problem"], r["order"][0]): next(iter(r["totals"].values())) for r in alone}
    chars = {(r["problem"], r["order"][0]): r["chars"][r["order"][0]] for r in alone}
    length = [
        (total[(p, "cand-p4")] - total[(p, "cand-c1")])
        / ((chars[(p, "cand-p4")] - chars[(p, "cand-c1")]) / 1000)
        for p in ALONE_PROBLEMS
        if (p, "cand-p4") in total and (p, "cand-c1") in total
    ]
    together = [
        (r["totals"]["cand-p4"] - r["totals"]["cand-c1"])
        / ((r["chars"]["cand-p4"] - r["chars"]["cand-c1"]) / 1000)
        for r in rows
        if r["probe"] == "lengths" and r["totals"]
    ]
    alone_gaps = [
        total[(p, "cand-c1")] - total[(p, "cand-b2")]
        for p in ALONE_PROBLEMS
        if (p, "cand-c1") in total and (p, "cand-b2") in total
    ]
    squares = f"{n} problems x 3 rotations"

    def se(k: str) -> str:
        xs = position[k]
        return (
            f"{squares}; SE {statistics.stdev(xs) / math.sqrt(len(xs)):.2f}" if n > 1 else squares
        )

    return [
        Fitted(
            "position_bias",
            round(bonus["first"], 2),
            "probe: rotations, the first position's effect on a judge's total",
            se("first"),
        ),
        Fitted("middle_bias", round(bonus["middle"], 2), "probe: as position_bias", se("middle")),
        Fitted("last_bias", round(bonus["last"], 2), "probe: as position_bias", se("last")),
        Fitted(
            "calibration_noise",
            round(calibration, 2),
            "probe: rotations, SD of a judgement's shift of all its totals",
            f"{len(shifts)} judgements",
        ),
        Fitted(
            "impression_noise",
            round(noise, 2),
            "probe: rotations, SD of the residual (judgement, candidate, position removed)",
            f"{9 * n} totals, {2 * n} dof",
        ),
        Fitted(
            "judge_skill",
            round(skill, 3),
            f"probe: rotations, judged gap correct - broken ({gap:.2f} points) / {PERFECT_GAP:g}",
            f"gaps {', '.join(f'{g:.2f}' for g in gaps)}",
        ),
        Fitted(
            "perception_noise",
            round(perception, 2),
            "probe: SD of that gap across problems beyond the residual, / judge_skill "
            "(0 when judge_skill < 0.05: undetermined)",
            f"{len(gaps)} problems",
        ),
        Fitted(
            "length_preference",
            round(statistics.fmean(together), 2) if together else 0.0,
            "probe: the same correct code with and without ~1,000 neutral characters, judged "
            "together in both orders (the judgement's shift and the position cancel)",
            f"{len(together)} judgements: {', '.join(f'{x:.2f}' for x in together)}; judged "
            f"alone (the shift does not cancel): {', '.join(f'{x:.2f}' for x in length)}",
        ),
        Fitted(
            "humaneval judge_accuracy",
            round((sum(g > 0 for g in gaps) + sum(g == 0 for g in gaps) / 2) / len(gaps), 3)
            if gaps
            else 1.0,
            "probe: rotations, problems whose judged gap correct - broken is positive "
            "(a tie counts half)",
            f"{len(gaps)} problems",
        ),
        Fitted(
            "alone gap (not a parameter)",
            round(statistics.fmean(alone_gaps), 2) if alone_gaps else 0.0,
            "probe: judged alone, correct - broken (compare judge_skill x 5)",
            f"{len(alone_gaps)} problems: {', '.join(f'{x:.2f}' for x in alone_gaps)}",
        ),
    ]


def _fit_voters(rows: list[dict[str, Any]]) -> list[Fitted]:
    """A voter ranks correct against broken code in both orders. With a probit model of its
    sense of quality (noise 1), P(correct first | correct shown first) = Phi((s*5 + b) / sqrt 2)
    and P(correct first | shown last) = Phi((s*5 - b) / sqrt 2): two shares give the skill s
    and the first position's bonus b (half a count added to each side: no share is 0 or 1)."""
    shown_first = [r for r in rows if r["ranking"] and r["order"][0] == "cand-c1"]
    shown_last = [r for r in rows if r["ranking"] and r["order"][0] == "cand-b2"]
    k1 = sum(r["ranking"][0] == "cand-c1" for r in shown_first)
    k2 = sum(r["ranking"][0] == "cand-c1" for r in shown_last)
    p1 = (k1 + 0.5) / (len(shown_first) + 1)
    p2 = (k2 + 0.5) / (len(shown_last) + 1)
    z1, z2 = probit(p1) * math.sqrt(2), probit(p2) * math.sqrt(2)
    skill = max(0.0, (z1 + z2) / 2 / PERFECT_GAP)
    first = (z1 - z2) / 2
    took_first = sum(r["ranking"][0] == r["order"][0] for r in shown_first + shown_last)
    n = len(shown_first) + len(shown_last)
    return [
        Fitted(
            "vote_skill",
            round(skill, 3),
            "probe: correct ranked first in both orders (probit, vote_noise 1)",
            f"correct first {share(k1, len(shown_first))} shown first, "
            f"{share(k2, len(shown_last))} shown last",
        ),
        Fitted(
            "vote_first_bias",
            round(first, 2),
            "probe: as vote_skill, the first position's bonus",
            f"first label ranked first {share(took_first, n)}",
        ),
    ]


def report(fitted: list[Fitted]) -> str:
    lines = [
        "| parameter | value | how | counts |",
        "|---|---:|---|---|",
        *(f"| {f.name} | {f.value:g} | {f.how} | {f.counts} |" for f in fitted),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measure", action="store_true", help="run the probes again (appends)")
    ap.add_argument("--base-url", help="a server that serves the model (with --measure)")
    ap.add_argument("--model", default=MODEL_ALIAS, help="the model it serves")
    ap.add_argument("--probes", type=Path, default=PROBES, help="the probes' JSON lines")
    ap.add_argument(
        "--only",
        default="",
        help="with --measure: only these probes, comma-separated (rotations, alone, lengths, "
        "vote, revise, critique)",
    )
    args = ap.parse_args(argv)
    if args.measure:
        if not args.base_url:
            ap.error("--measure needs --base-url (llama-server with SmolLM2, see the docstring)")
        only = [x for x in args.only.split(",") if x]
        asyncio.run(measure(args.base_url, args.model, args.probes, only))
    fitted = fit(read_records(), read_probes(args.probes))
    print(report(fitted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
