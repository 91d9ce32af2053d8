"""Reasoning is kept apart from the answer; garbage is recognised."""

from __future__ import annotations

from council_agents.llm.client import looks_like_garbage, split_reasoning


def test_inline_think_block_is_split_off():
    answer, reasoning = split_reasoning("<think>\nweigh options\n</think>\n\n## Proposal\nDo X.")
    assert answer == "## Proposal\nDo X." and reasoning == "weigh options"


def test_reasoning_content_field_is_kept():
    answer, reasoning = split_reasoning("## Proposal", "thought")
    assert (answer, reasoning) == ("## Proposal", "thought")


def test_unclosed_think_means_no_answer():
    answer, reasoning = split_reasoning("<think>\nran out of tokens while thinking")
    assert answer == "" and reasoning.startswith("ran out")


def test_no_think_block_is_fine():
    assert split_reasoning("plain answer") == ("plain answer", "")


def test_garbage_detection():
    assert looks_like_garbage("�#@%&*~^|\\/<>{}[]0123456789qzxjvk" * 5)
    assert looks_like_garbage("")
    assert not looks_like_garbage(
        "## Proposal\n1. Add an idempotency key table (`payment_id`, unique)."
    )
