"""Examples that use runstream the way a forecasting team's code would.

This folder is the package ``runstream.examples`` too (``src/runstream/examples`` links here,
as ``src/runstream/_schemas`` links to ``schemas/``), so ``runstream demo`` runs the
walk-forward backtest from an installed package, and the wheel carries the one copy of it.

- ``walk_forward``: a walk-forward backtest of 25 model variants over daily prices, one run
  per model per window per commodity, each window's runs recorded with one ``emit_runs()``
  call (``python examples/walk_forward.py --windows 40``);
- ``models``: its model registry in the seed's shape (``type``, ``function``, ``params``,
  ``experiment_tags``) and the fit functions;
- ``prices``: the price series (real daily WTI crude oil from the ``arch`` package, and a
  synthetic Coffee series, labelled as such in every run it produces).

Needs the ``examples`` extra: ``pip install 'runstream[examples]'``.
"""
