"""Fitting every LLM call into its model's context window.

**The rule**, for each attempt with completion budget ``B`` (the stage's, doubled after a
truncated answer), with ``room = window - MARGIN``:

- the answer keeps at least ``floor = max(MIN_ANSWER, B // 2)`` tokens (at most ``B``); on a
  retry (``B`` doubled) no more than half the window, nor less than the first attempt's floor;
- ``prompt + B <= room``: sent as it is;
- ``prompt + floor <= room``: ``max_tokens = room - prompt``;
- otherwise the stage's inputs are shortened (``llm.prompt``: each piece by its own rule, in
  the stage's order of sacrifice) until ``prompt + floor <= room``, and
  ``max_tokens = min(B, room - prompt)``. Each shortening is a line of the call record's
  ``context_fit.shortened`` and of the log (``llm.context_fit``);
- a fitted call's structured answer is fitted too (``llm.answer_schema``; a retry of a cut
  answer that the window cannot give twice the budget plans half the document instead).

A context-length 400 that still happens (an estimate the server disagrees with, a window that
shrank) is not a failure: the window and the server's prompt count are learned from the error
(``llm.endpoints``) and the call is fitted and sent again, at most ``REFITS`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from council_agents.core.errors import CouncilError
from council_agents.core.state import Agent, ContextFit
from council_agents.llm.answer_schema import fit_answer
from council_agents.llm.endpoints import Endpoint, Windows
from council_agents.llm.prompt import Prompt
from council_agents.llm.prompt_files import PromptFiles, Snapshot
from council_agents.llm.tokens import estimate, text_of

MARGIN = 16
"""Tokens of the window never planned: a server's template may add a token or two."""
MIN_ANSWER = 128
"""The smallest answer budget a shortening makes room for."""
REFITS = 2
"""Context-length rejections answered by fitting again, per attempt."""


class ContextOverflow(CouncilError):
    """A call that cannot fit its model's context window, even with its inputs shortened."""


class OverBudget(CouncilError):
    """An attempt that the task's share of the token budget has no room left for."""


@dataclass
class Fitted:
    """A call ready to send."""

    messages: list[BaseMessage]
    max_tokens: int
    fit: ContextFit | None = None
    """Set when anything was changed to fit (``CallRecord.context_fit``)."""
    response_format: dict[str, Any] | None = None
    """The answer's format, its schema fitted to ``max_tokens`` when the call was fitted."""


def floor(budget: int) -> int:
    """The smallest answer a call is fitted for."""
    return min(budget, max(MIN_ANSWER, budget // 2))


async def fit(
    windows: Windows,
    files: PromptFiles | Snapshot,
    agent: Agent,
    prompt: Prompt | list[BaseMessage],
    budget: int,
    *,
    stage: str,
    base: int | None = None,
    overflows: int = 0,
    response_format: dict[str, Any] | None = None,
    cap: int | None = None,
    min_answer: int | None = None,
) -> Fitted:
    """The call's messages, ``max_tokens`` and ``response_format``, fitted into the endpoint's
    window. ``budget`` is this attempt's, ``base`` the stage's (a retry after a truncated
    answer asks for more). A structured answer's schema is always sized to the tokens it may
    use (``fit_answer``, at the characters per token this endpoint's answers really took).
    ``cap``: the most prompt and completion tokens this attempt may spend (the task's share of
    the token budget, less its earlier attempts): ``max_tokens`` is cut to it, and an attempt
    with no room for its smallest answer raises ``OverBudget``. ``min_answer``: the smallest
    answer this call can use (a revision must rewrite its whole proposal), instead of
    ``floor(budget)``.
    """
    known = await windows.endpoint(agent)
    if isinstance(prompt, Prompt):
        messages, cuts = prompt.render(files)
    else:
        messages, cuts = prompt, []
    per_token = windows.chars_per_token(agent)

    def sized(max_tokens: int) -> tuple[dict[str, Any] | None, str | None]:
        if response_format is None:
            return None, None
        planned = max_tokens * (base or budget) // budget  # a retry plans the stage's length
        return fit_answer(response_format, planned, per_token)

    if cap is not None:  # the budget's room, from an upper estimate of the prompt
        prompt_tokens = int(estimate(messages) * known.scale)
        if prompt_tokens + (min_answer or floor(base or budget)) > cap:
            raise OverBudget(
                stage,
                agent["agent_id"],
                f"no room in the token budget: the prompt is about {prompt_tokens} tokens and "
                f"this task has {cap} left",
            )
        budget = min(budget, cap - prompt_tokens)
    if known.window is None:
        return Fitted(messages, budget, response_format=sized(budget)[0])
    room = known.window - MARGIN
    if estimate(messages) * known.scale + budget <= room and not overflows:
        return Fitted(messages, budget, response_format=sized(budget)[0])
    tokens, counted_by = await windows.count(agent, messages, known)
    least = min(budget, min_answer) if min_answer else floor(base or budget)
    need = least if min_answer else min(floor(budget), max(least, room // 2))
    if tokens + need > room and isinstance(prompt, Prompt) and prompt.pieces:
        messages, cuts, tokens, counted_by = await _shorten(
            windows, files, agent, prompt, known, messages, tokens, room - need
        )
    if tokens + least > room:
        raise ContextOverflow(
            stage,
            agent["agent_id"],
            f"the prompt is {tokens} tokens ({counted_by}) and the answer needs at least {least}: "
            f"over the context window of {agent['model']} at {agent['base_url']} "
            f"({known.window} tokens){', with its inputs shortened' if cuts else ''}",
        )
    max_tokens = min(budget, room - tokens)
    fitted_format, note = sized(max_tokens)
    if max_tokens == budget and not cuts and not overflows:
        return Fitted(messages, budget, response_format=fitted_format)
    cuts = [*cuts, note] if note else cuts
    record = ContextFit(
        window=known.window,
        prompt_tokens=tokens,
        counted_by=counted_by,
        asked=budget,
        max_tokens=max_tokens,
        shortened=cuts,
        overflows=overflows,
    )
    return Fitted(messages, max_tokens, record, fitted_format)


async def _shorten(
    windows: Windows,
    files: PromptFiles | Snapshot,
    agent: Agent,
    prompt: Prompt,
    known: Endpoint,
    messages: list[BaseMessage],
    tokens: int,
    target: int,
) -> tuple[list[BaseMessage], list[str], int, str]:
    """Cut the prompt's pieces, first first, until it is at most ``target`` tokens (or cannot
    be cut further); the server counts again after each cut.
    """
    limits = {name: piece.size() for name, piece in prompt.pieces.items()}
    cuts: list[str] = []
    counted_by = "estimate"
    for round_ in range(6):
        excess = tokens - target
        if excess <= 0:
            break
        chars = sum(len(text_of(m)) for m in messages)
        per_token = max(1.0, chars / max(tokens, 1))
        remove = int(excess * per_token * (1.1 + 0.2 * round_)) + 32
        for name in limits:
            take = min(remove, limits[name])
            limits[name] -= take
            remove -= take
        messages, cuts = prompt.render(files, limits)
        tokens, counted_by = await windows.count(agent, messages, known)
        if all(limit == 0 for limit in limits.values()):
            break
    return messages, cuts, tokens, counted_by
