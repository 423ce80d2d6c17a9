"""Sweeps: a base config and a grid of overrides, each point a full experiment.

- ``expansion``: reading a sweep file (``sweeps/<name>.yaml``), expanding its blocks into
  points (grids of dotted config keys, zip groups of keys that move together, exclusion
  rules), naming each point and validating every point's config before any work;
- ``running``: every point's stages (``helpers.stages.<stage>.run``) inside one
  ``execution.cluster``, points concurrently; a failed point is reported and the rest finish;
- ``tables``: the points' tables gathered into tidy cross-experiment tables with the
  statistics of ``helpers/analysis/statistics.py``;
- ``report``: the sweep's figures and ``summary.md`` from those tables (the sweep's notebook).

``python -m helpers.sweeps run SWEEP`` (``make sweep``) runs and aggregates; docs/sweeps.md.
"""
