"""Every Valkey key council reads or writes, and nothing else: the one place that spells them.

The checkpointer's keys are langgraph-checkpoint-aws's (``BaseValkeySaver._make_*_key``,
version 1.2): per thread (deliberation) ``T`` and checkpoint namespace ``NS`` (``""``, the
root, for council's graph, which has no subgraph):

| key | holds | written by |
|---|---|---|
| ``checkpoint:{T}:NS:ID`` | one checkpoint (``storage.checkpoints`` reads it) | the saver |
| ``writes:{T}:NS:ID`` | the pending writes made from checkpoint ``ID`` | the saver |
| ``thread:{T}:NS`` | the thread's checkpoint ids, newest first | the saver |
| ``council:lease:{T}`` | the worker running the thread (``storage.lease``) | a worker |
| ``council:done:{T}`` | a finished deliberation's done marker (``storage.markers``) | compaction |
| ``council:councils`` | hash: name -> stored council (``storage.councils``) | API, CLI |
| ``council:apikeys`` | hash: key id -> API key record (``storage.apikeys``) | ``council keys`` |
| ``council:retention:sweep`` | the process sweeping (``storage.lease.take_sweep_lock``) | a sweep |

``{T}`` is a hash tag: a thread's keys share one cluster slot, so one WATCH/MULTI/EXEC
changes them together. ``tests/integration/test_valkey_checkpointer.py`` checks that the
saver's own key functions, and the keys it writes for a real checkpoint, are these.
"""

from __future__ import annotations

from typing import Literal

COUNCILS_KEY = "council:councils"
"""The stored councils: one hash, council name -> ``CouncilSpec`` JSON."""
APIKEYS_KEY = "council:apikeys"
"""The API keys: one hash, key id -> ``KeyRecord`` JSON (a key's SHA-256, never the key)."""
SWEEP_LOCK_KEY = "council:retention:sweep"
"""Held (``SET NX PX``) by the one process applying the retention policy this interval."""

THREADS_PATTERN = "thread:{*}:"
"""``SCAN MATCH`` pattern of every thread's list of checkpoints in the root namespace."""

_THREAD_PREFIX, _THREAD_SUFFIX = "thread:{", "}:"

KeyKind = Literal["checkpoint", "writes", "thread", "lease", "marker", "councils", "apikeys"]


def checkpoint_key(thread_id: str, checkpoint_id: str, checkpoint_ns: str = "") -> str:
    """The saver's key of one checkpoint.

    Args:
        thread_id: The thread (deliberation) id.
        checkpoint_id: The checkpoint's id.
        checkpoint_ns: The checkpoint namespace (``""``: the root graph).

    Returns:
        ``checkpoint:{T}:NS:ID``.
    """
    return f"checkpoint:{{{thread_id}}}:{checkpoint_ns}:{checkpoint_id}"


def writes_key(thread_id: str, checkpoint_id: str, checkpoint_ns: str = "") -> str:
    """The saver's key of the pending writes made from one checkpoint.

    Args:
        thread_id: The thread (deliberation) id.
        checkpoint_id: The checkpoint the writes were made from.
        checkpoint_ns: The checkpoint namespace (``""``: the root graph).

    Returns:
        ``writes:{T}:NS:ID``.
    """
    return f"writes:{{{thread_id}}}:{checkpoint_ns}:{checkpoint_id}"


def thread_key(thread_id: str, checkpoint_ns: str = "") -> str:
    """The saver's list of a thread's checkpoint ids, newest first.

    Args:
        thread_id: The thread (deliberation) id.
        checkpoint_ns: The checkpoint namespace (``""``: the root graph).

    Returns:
        ``thread:{T}:NS``.
    """
    return f"thread:{{{thread_id}}}:{checkpoint_ns}"


def thread_of_list(key: str) -> str:
    """The thread id of a root-namespace list key (one that ``THREADS_PATTERN`` matched).

    Args:
        key: ``thread:{T}:``.

    Returns:
        ``T``.
    """
    return key[len(_THREAD_PREFIX) : -len(_THREAD_SUFFIX)]


def lease_key(thread_id: str) -> str:
    """The lease of a thread a worker is running, in the thread's hash slot.

    Args:
        thread_id: The thread (deliberation) id.

    Returns:
        ``council:lease:{T}``.
    """
    return f"council:lease:{{{thread_id}}}"


def marker_key(thread_id: str) -> str:
    """The done marker of a finished deliberation, kept after its checkpoints.

    Args:
        thread_id: The thread (deliberation) id.

    Returns:
        ``council:done:{T}``.
    """
    return f"council:done:{{{thread_id}}}"


def kind_of(key: str) -> KeyKind | None:
    """What a key holds, from its spelling (None: not a key council or its saver writes).

    Args:
        key: A Valkey key.

    Returns:
        ``checkpoint``, ``writes``, ``thread``, ``lease``, ``marker``, ``councils``,
        ``apikeys``, or None.
    """
    if key == COUNCILS_KEY:
        return "councils"
    if key == APIKEYS_KEY:
        return "apikeys"
    for prefix, kind in _PREFIXES:
        if key.startswith(prefix):
            return kind
    return None


_PREFIXES: tuple[tuple[str, KeyKind], ...] = (
    ("checkpoint:{", "checkpoint"),
    ("writes:{", "writes"),
    ("thread:{", "thread"),
    ("council:lease:{", "lease"),
    ("council:done:{", "marker"),
)
