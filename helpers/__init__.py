"""Reusable pieces of the qml-robustness study (see docs/architecture.md).

One subpackage per kind of component, each with a registry (``data``, ``models``,
``attacks``, ``explain``, ``certificates``), the analysis of result tables (``analysis``),
what a reader sees (``report``), one module per notebook stage (``stages``) and where
results live (``store``); ``config``, ``params`` and ``registry`` hold typed configs,
parameter rules and the registries. This package imports nothing on its own: the Makefile
reads the stage graph with a bare Python.
"""
