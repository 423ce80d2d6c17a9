"""Reusable pieces of the qml-robustness study (see docs/architecture.md).

One subpackage per kind of component, each with a registry (``data``; ``models`` with the
circuit's encodings, ansatzes and readouts; ``attacks``; ``threats``; ``explain``;
``certificates``; ``defences``; the report's ``sections``), the analysis of result tables
(``analysis``), what a reader sees (``report``), one module per notebook stage (``stages``)
and where results live (``store``, with the stage graph); ``config`` (one module per section),
``params`` and ``registry`` hold typed configs, parameter rules and the registries; ``helpers.evaluate`` (``suite``) runs the whole evaluation
on a model object of your own. This package imports nothing on its own: the Makefile reads the
stage graph with a bare Python.
"""
import warnings

# Captum imports ``tqdm.auto``, which in a notebook kernel without ipywidgets warns that it
# falls back to its text bar. Nothing here uses Captum's bars, and the stages' own bars are
# text by design (helpers/stages/progress.py): the warning says nothing about a run.
warnings.filterwarnings("ignore", message="IProgress not found")


def __getattr__(name: str):
    """``helpers.evaluate``: the attack suite, certificates, masking checks and ceiling on a
    model object of your own (``helpers.suite``), imported on first use only."""
    if name == "evaluate":
        from .suite import evaluate
        return evaluate
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
