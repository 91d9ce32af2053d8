"""Content for the simulated vLLM server: approximate tokens, plausible text, JSON from a schema.

Nothing here is a model. The text is built from the words of the request, so that different
agents and prompts get different answers, and it is fully deterministic for a given random
generator (which the server seeds from the request's seed and messages).

Token approximation (no tokenizer can be downloaded here): a token is a run of at most four
word characters or a single punctuation character, with the white space before it attached.
English prose comes out at about 1.3 tokens per word, close to Qwen's BPE on such text. Joining
the tokens gives back the text exactly, so a stream of tokens reproduces the answer.
"""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

Defs = dict[str, Any]
"""A schema's ``$defs`` (and ``definitions``), by name."""

_TOKEN_RE = re.compile(r"\s*(?:\w{1,4}|[^\w\s])|\s+$")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,}")
_STOP = {
    "that",
    "this",
    "with",
    "from",
    "your",
    "have",
    "will",
    "what",
    "when",
    "which",
    "their",
    "there",
    "they",
    "them",
    "then",
    "than",
    "into",
    "each",
    "only",
    "also",
    "must",
    "should",
    "would",
    "could",
    "about",
    "other",
    "these",
    "those",
    "being",
    "were",
    "been",
    "does",
    "agent",
    "proposal",
    "proposals",
    "critique",
    "revise",
    "task",
    "role",
    "write",
    "answer",
    "below",
    "above",
    "following",
    "peer",
    "peers",
    "under",
    "review",
    "while",
    "within",
    "keeping",
    "without",
    "before",
    "after",
    "where",
    "stated",
    "judged",
    "rubric",
    "means",
}


def tokenize(text: str) -> list[str]:
    """Split text into approximate tokens whose concatenation is the text."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the simulator counts them."""
    return len(tokenize(text))


def keywords(text: str, limit: int = 24) -> list[str]:
    """The distinctive words of a prompt, most frequent first (ties by first appearance)."""
    seen: dict[str, int] = {}
    order: dict[str, int] = {}
    for i, w in enumerate(_WORD_RE.findall(text)):
        lw = w.lower()
        if lw in _STOP:
            continue
        seen[lw] = seen.get(lw, 0) + 1
        order.setdefault(lw, i)
    ranked = sorted(seen, key=lambda w: (-seen[w], order[w]))
    return ranked[:limit] or ["system", "change", "service", "data"]


_VERBS = [
    "introduce",
    "measure",
    "isolate",
    "roll out",
    "verify",
    "document",
    "automate",
    "split",
    "cache",
    "monitor",
    "retry",
    "validate",
    "migrate",
    "benchmark",
    "guard",
]
_NOUNS = [
    "boundary",
    "rollback path",
    "test",
    "metric",
    "alert",
    "feature flag",
    "runbook",
    "contract",
    "checkpoint",
    "budget",
    "index",
    "queue",
    "dashboard",
    "canary",
    "limit",
]
_CLAUSES = [
    "so that failures stay contained",
    "before the change reaches production",
    "with a clear way back",
    "without breaking existing clients",
    "while keeping latency within budget",
    "and record the outcome in the runbook",
    "so the team can observe it",
    "under realistic load",
    "behind a feature flag",
    "with an owner for each step",
]
_CRIT_GOOD = [
    "addresses {k} directly",
    "keeps the {k} change small",
    "names concrete {k} checks",
    "has a credible rollback for {k}",
]
_CRIT_BAD = [
    "does not say how {k} is measured",
    "leaves the {k} failure mode open",
    "underestimates the risk around {k}",
    "gives no owner for the {k} step",
    "skips tests for {k}",
]


def _sentence(rng: random.Random, kws: list[str]) -> str:
    k1, k2 = rng.choice(kws), rng.choice(kws)
    s = f"{rng.choice(_VERBS)} the {k1} {rng.choice(_NOUNS)} {rng.choice(_CLAUSES)}"
    if rng.random() < 0.4:
        s += f", and {rng.choice(_VERBS)} {k2}"
    return s[0].upper() + s[1:] + "."


def _section(rng: random.Random, kws: list[str], title: str, n: int, numbered: bool) -> str:
    lines = [f"### {title}"]
    for i in range(n):
        lines.append(f"{i + 1}. {_sentence(rng, kws)}" if numbered else f"- {_sentence(rng, kws)}")
    return "\n".join(lines)


def _body(rng: random.Random, stage: str, kws: list[str], who: str) -> list[str]:
    """An endless-enough list of paragraphs for the stage; the caller stops at the target length."""
    if stage == "critique":
        parts = [f"## Critique{(' by ' + who) if who else ''}"]
        parts.append(
            "### Strengths\n"
            + "\n".join(
                f"- The proposal {rng.choice(_CRIT_GOOD).format(k=rng.choice(kws))}."
                for _ in range(2)
            )
        )
        parts.append(
            "### Weaknesses\n"
            + "\n".join(
                f"- It {rng.choice(_CRIT_BAD).format(k=rng.choice(kws))}." for _ in range(3)
            )
        )
        for _ in range(40):
            parts.append(_section(rng, kws, "Suggestion", 2, False))
        return parts
    title = "Revised proposal" if stage == "revise" else "Proposal"
    parts = [f"## {title}: {' '.join(kws[:3])}"]
    if stage == "revise":
        parts.append(
            "### Changes after review\n"
            + "\n".join(
                f"- Now {rng.choice(_VERBS)}s {rng.choice(kws)} {rng.choice(_CLAUSES)}."
                for _ in range(2)
            )
        )
    parts.append("### Approach\n" + " ".join(_sentence(rng, kws) for _ in range(3)))
    parts.append(_section(rng, kws, "Steps", 5, True))
    parts.append(_section(rng, kws, "Risks", 3, False))
    parts.append(_section(rng, kws, "Tests", 3, False))
    for _ in range(40):
        parts.append(_section(rng, kws, "Details", 3, False))
    return parts


def make_text(
    rng: random.Random, stage: str, prompt: str, target_tokens: int, who: str = ""
) -> str:
    """Text of about ``target_tokens`` tokens, shaped for the stage, ending at a sentence."""
    kws = keywords(prompt)
    rest = kws[6:]
    rng.shuffle(rest)
    kws = kws[:6] + rest  # the prompt's most frequent words always, then a varying few
    out: list[str] = []
    n = 0
    for part in _body(rng, stage, kws[:12], who):
        for line in part.split("\n"):
            if n >= target_tokens:
                break
            out.append(line)
            n += count_tokens(line) + 1
    return "\n".join(out)


_UNDER_REVIEW = re.compile(
    r"## Proposal under review \(version \d+\)\n"
    r"(?:<(data-\w+)>\n(.*?)\n</\1>|(.*?)(?=\n## |\Z))",
    re.S,
)
_DEFECT_LINE = re.compile(r"^- \*\*(blocker|major|minor|constraint violated)\*\*[^:]*: (.+)$", re.M)


def under_review(prompt: str) -> str | None:
    """The proposal a critique or revise prompt is about, if any: council shows every proposal
    (``## Proposal P<k>`` sections) and names the one under review last (``Review proposal P2``,
    ``## Critiques of proposal P2``); an older layout shows it alone (``## Proposal under
    review``).
    """
    named = _NAMED.search(prompt)
    if named is not None:
        shown = dict(proposal_sections(prompt))
        if named.group(1) in shown:
            return shown[named.group(1)].strip()
    found = _UNDER_REVIEW.search(prompt)
    if found is None:
        return None
    previous = (found.group(2) if found.group(1) else found.group(3)).strip()
    return _ESCAPED_HEADING.sub(r"\1\2", previous)


_DROPPABLE = re.compile(r"^### (Tests|Risks|Steps|Approach)\n(?:(?!### ).*(?:\n|$))*", re.M)


def dropped_revision(rng: random.Random, prompt: str) -> str:
    """A revision that drops content, as a weak model writes one: the proposal under review
    without one of its fixed sections (or, without any, a fifth of it), then its changes.
    Council must refuse it (``checks.artifact``).
    """
    previous = under_review(prompt) or make_text(rng, "revise", prompt, 200)
    sections = list(_DROPPABLE.finditer(previous))
    if sections:
        cut = rng.choice(sections)
        body = (previous[: cut.start()] + previous[cut.end() :]).strip()
    else:
        body = previous[: max(1, len(previous) // 5)]
    return body + "\n\n=== CHANGES ===\nADDRESSED: the critiques -> removed what was not needed"


def revision(rng: random.Random, prompt: str, target_tokens: int, who: str = "") -> str:
    """A revision in the council's plain-text form: the proposal under review kept whole, with
    a section of changes after review, then ``=== CHANGES ===`` and one ``ADDRESSED:`` line per
    defect the critiques named (up to three). Without a proposal in the prompt, fresh prose.
    """
    previous = under_review(prompt)
    if previous is None:
        return make_text(rng, "revise", prompt, target_tokens, who)
    kws = keywords(prompt)
    changes = "\n".join(
        f"- Now {rng.choice(_VERBS)}s {rng.choice(kws)} {rng.choice(_CLAUSES)}." for _ in range(2)
    )
    lines = previous.split("\n")
    body = "\n".join([lines[0], "### Changes after review", changes, *lines[1:]])
    defects = [what.strip() for _, what in _DEFECT_LINE.findall(prompt)][:3]
    listed = "\n".join(
        f"ADDRESSED: {what[:120]} -> {rng.choice(_VERBS)} it {rng.choice(_CLAUSES)}"
        for what in defects
    )
    return body + "\n\n=== CHANGES ===\n" + (listed or "ADDRESSED: (none named) -> kept as is")


def make_thinking(rng: random.Random, prompt: str) -> str:
    """A reasoning block about the prompt."""
    kws = keywords(prompt, 8)
    n = rng.randint(2, 5)
    lines = [f"The request is about {', '.join(kws[:3])}."]
    for _ in range(n):
        lines.append(
            f"I should consider the {rng.choice(kws)} {rng.choice(_NOUNS)} {rng.choice(_CLAUSES)}."
        )
    lines.append("Let me write the answer.")
    return " ".join(lines)


def make_garbage(rng: random.Random, n_tokens: int) -> str:
    """Text that is not words (the garbage fault)."""
    alphabet = "�#@%&*~^|\\/<>{}[]0123456789qzxjvk"
    return "".join(rng.choice(alphabet) for _ in range(max(8, n_tokens * 3)))


class SchemaError(ValueError):
    """The schema cannot be satisfied (or is not understood) by the generator."""


def from_schema(schema: dict[str, Any], rng: random.Random, prompt: str = "") -> Any:
    """A JSON value valid against ``schema`` (the subset structured output uses).

    Args:
        schema: A JSON schema: ``$ref`` into ``$defs``/``definitions``, ``const``, ``enum``,
            ``anyOf``/``oneOf`` (the first non-null option), ``allOf``, and the types with
            their bounds; string ``pattern`` is not supported.
        rng: Draws every choice (the same generator state gives the same value).
        prompt: Its distinctive words fill the strings.

    Returns:
        The value.

    Raises:
        SchemaError: The schema cannot be satisfied or uses what the generator does not know.
    """
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    kws = keywords(prompt, 12) if prompt else ["value"]
    return _gen(schema, rng, defs, kws, "$", 0)


def _resolve(ref: str, defs: Defs, path: str) -> dict[str, Any]:
    m = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", ref)
    if not m or m.group(1) not in defs:
        raise SchemaError(f"{path}: cannot resolve $ref {ref!r}")
    resolved: dict[str, Any] = defs[m.group(1)]
    return resolved


def _gen(s: Any, rng: random.Random, defs: Defs, kws: list[str], path: str, depth: int) -> Any:
    """A value for schema ``s``: keywords that choose among values first, then by type."""
    if depth > 12:
        raise SchemaError(f"{path}: schema nests deeper than 12 levels")
    if s is True or s == {}:
        return rng.choice(kws)
    if not isinstance(s, dict):
        raise SchemaError(f"{path}: schema must be an object, got {type(s).__name__}")
    if "$ref" in s:
        return _gen(_resolve(s["$ref"], defs, path), rng, defs, kws, path, depth + 1)
    if "const" in s:
        return s["const"]
    if "enum" in s:
        if not s["enum"]:
            raise SchemaError(f"{path}: enum is empty")
        return rng.choice(s["enum"])
    for key in ("anyOf", "oneOf"):
        if key in s:
            options = [o for o in s[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            if not options:
                return None
            return _gen(options[0], rng, defs, kws, f"{path}.{key}[0]", depth + 1)
    if "allOf" in s:
        return _gen(_merge_all_of(s["allOf"], defs, path), rng, defs, kws, path, depth + 1)
    t = _type_of(s)
    if t == "object":
        return _gen_object(s, rng, defs, kws, path, depth)
    if t == "array":
        return _gen_array(s, rng, defs, kws, path, depth)
    if t in ("number", "integer"):
        return _gen_number(s, t == "integer", rng, path)
    if t == "boolean":
        return rng.random() < 0.5
    if t == "null":
        return None
    if t == "string":
        return _gen_string(s, rng, kws, path)
    raise SchemaError(f"{path}: unsupported type {t!r}")


def _merge_all_of(parts: list[Any], defs: Defs, path: str) -> dict[str, Any]:
    """One schema from ``allOf``'s parts: properties and required merged, the rest overridden."""
    merged: dict[str, Any] = {}
    for part in parts:
        part = _resolve(part["$ref"], defs, path) if "$ref" in part else part
        for k, v in part.items():
            if k in ("properties",):
                merged.setdefault(k, {}).update(v)
            elif k == "required":
                merged.setdefault(k, []).extend(v)
            else:
                merged[k] = v
    return merged


def _type_of(s: dict[str, Any]) -> Any:
    """The type to generate: the first non-null of a list, else guessed from the keywords."""
    t = s.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        t = non_null[0] if non_null else "null"
    if t is None:
        t = "object" if "properties" in s else "string"
    return t


def _gen_object(
    s: dict[str, Any], rng: random.Random, defs: Defs, kws: list[str], path: str, depth: int
) -> dict[str, Any]:
    props = s.get("properties", {})
    required = s.get("required", [])
    missing = [r for r in required if r not in props]
    if missing and s.get("additionalProperties") is False:
        raise SchemaError(f"{path}: required {missing} not in properties")
    out = {}
    for name, sub in props.items():
        if name in required or rng.random() < 0.7:
            out[name] = _gen(sub, rng, defs, kws, f"{path}.{name}", depth + 1)
    for name in missing:
        out[name] = rng.choice(kws)
    return out


def _gen_array(
    s: dict[str, Any], rng: random.Random, defs: Defs, kws: list[str], path: str, depth: int
) -> list[Any]:
    lo = int(s.get("minItems", min(1, int(s.get("maxItems", 1)))))  # one item if allowed
    hi = int(s.get("maxItems", max(lo, 3)))
    if lo > hi:
        raise SchemaError(f"{path}: minItems {lo} > maxItems {hi}")
    items = s.get("items", {})
    n = rng.randint(lo, hi)
    if isinstance(items, list):  # tuple form
        return [_gen(it, rng, defs, kws, f"{path}[{i}]", depth + 1) for i, it in enumerate(items)]
    if not s.get("uniqueItems"):
        return [_gen(items, rng, defs, kws, f"{path}[{i}]", depth + 1) for i in range(n)]
    uniq: list[Any] = []
    for attempt in range(50 * n):  # e.g. a permutation of an enum: draw until all differ
        v = _gen(items, rng, defs, kws, f"{path}[{attempt}]", depth + 1)
        if v not in uniq:
            uniq.append(v)
        if len(uniq) == n:
            break
    if len(uniq) < lo:
        raise SchemaError(f"{path}: cannot make {lo} unique items")
    return uniq


def _gen_number(s: dict[str, Any], integer: bool, rng: random.Random, path: str) -> float:
    low: float = s.get("minimum", s.get("exclusiveMinimum", 0 if integer else 0.0))
    high: float = s.get("maximum", s.get("exclusiveMaximum", low + 10))
    if "exclusiveMinimum" in s and "minimum" not in s:
        low = low + (1 if integer else 1e-6)
    if "exclusiveMaximum" in s and "maximum" not in s:
        high = high - (1 if integer else 1e-6)
    if low > high:
        raise SchemaError(f"{path}: minimum {low} > maximum {high}")
    if integer:
        ilo, ihi = math.ceil(low), math.floor(high)
        if ilo > ihi:
            raise SchemaError(f"{path}: no integer between {low} and {high}")
        return rng.randint(ilo, ihi)
    return round(rng.uniform(low, high), 2) if high - low >= 0.02 else low


def _gen_string(s: dict[str, Any], rng: random.Random, kws: list[str], path: str) -> str:
    lo = int(s.get("minLength", 0))
    hi = int(s.get("maxLength", 400))
    if lo > hi:
        raise SchemaError(f"{path}: minLength {lo} > maxLength {hi}")
    if "pattern" in s:
        raise SchemaError(f"{path}: string patterns are not supported by the simulator")
    text = _sentence(rng, kws)
    while len(text) < lo:
        text += " " + _sentence(rng, kws)
    return text[:hi]


def break_json(rng: random.Random, doc: str) -> str:
    """A document that is not valid JSON (a quote removed somewhere in the middle)."""
    quotes = [i for i, c in enumerate(doc) if c == '"']
    if not quotes:
        return doc + "}"
    i = quotes[len(quotes) // 2]
    return doc[:i] + doc[i + 1 :]


def dumps(value: Any) -> str:
    """JSON as a model would write it."""
    return json.dumps(value, ensure_ascii=False, indent=1)


_SECTION = re.compile(
    r"^## Proposal (P\d+)\n(.*?)"
    r"(?=^## Proposal P\d+\n|^## What the checks found|^## Your assignment|^## Critiques|\Z)",
    re.S | re.M,
)
_NAMED = re.compile(r"(?:Review proposal|^## Critiques of proposal) (P\d+)\b", re.M)
"""Where a critique or revise prompt names the proposal under review."""
_FENCED = re.compile(r"^<(data-\w+)>\n(.*)\n</\1>\s*$", re.S)
_ESCAPED_HEADING = re.compile(r"^( {0,3})\\(#+)", re.M)


def proposal_sections(prompt: str) -> list[tuple[str, str]]:
    """``(label, text)`` of each ``## Proposal P<k>`` section of a judge or vote prompt, as its
    author wrote it: council fences each one as data (``<data-ID>`` ... ``</data-ID>``, headings
    escaped with a backslash), and this undoes that.
    """
    found = []
    for label, section in _SECTION.findall(prompt):
        fenced = _FENCED.match(section.strip("\n"))
        text = section
        if fenced:
            text = _ESCAPED_HEADING.sub(r"\1\2", fenced.group(2))
            text = text.replace("<\\/data-", "</data-").replace("<\\data-", "<data-")
        found.append((label, text))
    return found
