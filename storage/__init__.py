"""Valkey: every key and value format council reads or writes, and nothing else knows them.

- ``keys``: every key (the saver's, the lease, the done marker, councils, API keys, the
  sweep lock).
- ``saver``: the checkpointer (``CouncilValkeySaver``, ``valkey_saver``, the served
  ``checkpointer``) and how to reach Valkey (``client_url``, ``connect``).
- ``checkpoints``: reading stored checkpoints and pending writes; a thread's status, size,
  the list of threads.
- ``markers``: the done marker of a finished deliberation.
- ``compaction``: compacting and deleting a thread's checkpoints under WATCH.
- ``lease``: the per-thread lease and the sweep lock.
- ``councils``: stored councils. ``apikeys``: API keys.

What to keep and for how long is ``server.retention``'s; docs/STORAGE.md describes both.
"""
