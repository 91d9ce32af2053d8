"""A structured answer's JSON Schema fitted to the tokens it may use.

When a call's ``max_tokens`` is capped (``llm.fit``), the answer's schema is bounded too: lists
at most ``K`` items and strings at most a share of their length, so that the server's grammar
(vLLM's guided decoding, llama.cpp's) ends the document inside the room instead of cutting it
mid-string. The answer is still checked against the stage's own, looser model.
"""

from __future__ import annotations

from typing import Any

ANSWER_CHARS_PER_TOKEN = 2.5
"""A fitted structured answer is planned at this many characters a token (JSON with English
strings runs at 3 or more: a margin)."""
ITEM_STRING = 400
"""The planned length of a string the schema leaves unbounded inside a list or a nested object
(an unbounded string of the document itself, such as a revision's ``proposal``, may take the
whole room)."""
KEEP = 0.5
"""Lists keep as many items as they can while every string keeps at least this share of its
length."""
LEAST = 0.15
"""Lists keep one item (a critique one defect) while strings keep at least this share."""


def fit_answer(
    response_format: dict[str, Any],
    max_tokens: int,
    chars_per_token: float = ANSWER_CHARS_PER_TOKEN,
) -> tuple[dict[str, Any], str | None]:
    """``response_format`` whose JSON Schema cannot produce a document longer than
    ``max_tokens`` allows: lists at most ``K`` items (never below their own minimum) and every
    string at most a share ``f`` of its length (the schema's ``maxLength``, else
    ``ITEM_STRING``, else the room), with the largest ``K`` that keeps ``f >= KEEP`` (one
    item while ``f >= LEAST``: a critique keeps a defect to report). The
    grammar (vLLM's guided decoding, llama.cpp's) then ends the document inside the room;
    the answer is still checked against the stage's own, looser model.
    """
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema")
    if response_format.get("type") != "json_schema" or not isinstance(schema, dict):
        return response_format, None
    room = int(max_tokens * chars_per_token)
    defs = schema.get("$defs", {})
    if sum(_size(schema, defs, None, room, True)) <= room:
        return response_format, None
    choice: tuple[int, float] | None = None
    for items in (None, 12, 8, 6, 4, 3, 2, 1, 0):
        fixed, stretch = _size(schema, defs, items, room, True)
        share = min(1.0, max(0.0, (room - fixed) / stretch)) if stretch else 1.0
        if items is None:
            if share >= 1.0:
                return response_format, None
            continue
        if share >= KEEP or (items == 1 and share >= LEAST) or items == 0:
            choice = (items, share)
            break
    assert choice is not None
    items, share = choice
    capped = _capped(schema, defs, items, share, room, True)
    note = (
        f"answer schema: lists at most {items} items, strings cut to {share:.0%} of their "
        f"length, to end within {max_tokens} tokens"
    )
    return {**response_format, "json_schema": {**spec, "schema": capped}}, note


def _string_bound(node: dict[str, Any], room: int, top: bool) -> int:
    own = node.get("maxLength")
    return own if isinstance(own, int) else (room if top else ITEM_STRING)


def _size(
    node: Any, defs: dict[str, Any], items: int | None, room: int, top: bool
) -> tuple[int, int]:
    """The longest JSON text a schema allows, as (fixed characters, string characters), with
    lists at most ``items`` (None: their own bound, 64 when unbounded).
    """
    if not isinstance(node, dict):
        return 8, 0
    if "$ref" in node:
        return _size(defs.get(node["$ref"].rsplit("/", 1)[-1], {}), defs, items, room, top)
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        return max(len(str(v)) + 2 for v in values), 0
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        sizes = [_size(o, defs, items, room, top) for o in options]
        return max(sizes, key=sum)
    if node.get("type") == "object" or "properties" in node:
        fixed, stretch = 2, 0
        for key, value in node.get("properties", {}).items():
            f, s = _size(value, defs, items, room, top)
            fixed, stretch = fixed + len(key) + 6 + f, stretch + s
        return fixed, stretch
    if node.get("type") == "array":
        count = _count(node, items)
        f, s = _size(node.get("items", {}), defs, items, room, False)
        return 2 + count * (2 + f), count * s
    if node.get("type") == "string":
        return 2, _string_bound(node, room, top)
    return 8, 0  # numbers, booleans, null


def _count(node: dict[str, Any], items: int | None) -> int:
    own = node.get("maxItems")
    bound = own if isinstance(own, int) else 64
    return bound if items is None else max(node.get("minItems", 0), min(bound, items))


def _capped(node: Any, defs: dict[str, Any], items: int, share: float, room: int, top: bool) -> Any:
    """A copy of ``node``: lists at most ``items``, strings at ``share`` of their length."""
    if isinstance(node, list):
        return [_capped(x, defs, items, share, room, top) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":  # definitions are used inside the document, never at its top
            out[key] = {k: _capped(v, defs, items, share, room, False) for k, v in value.items()}
        elif key == "properties":
            out[key] = {k: _capped(v, defs, items, share, room, top) for k, v in value.items()}
        elif key == "items":
            out[key] = _capped(value, defs, items, share, room, False)
        else:
            out[key] = _capped(value, defs, items, share, room, top)
    if node.get("type") == "array":
        out["maxItems"] = _count(node, items)
    if node.get("type") == "string" and "enum" not in node and "const" not in node:
        least = node.get("minLength", 0)
        out["maxLength"] = max(least, int(_string_bound(node, room, top) * share))
    return out
