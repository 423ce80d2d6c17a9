"""The experiment's Markdown summary, written from the result tables (no typed numbers).

Every sentence that says whether models differ is generated from the comparisons table: the
pre-declared primary comparison with its own p, everything else with Holm-adjusted p-values;
no budget is picked after looking at the results.
"""
from __future__ import annotations


from .section import Report, Tables, applicable
from .tables import CLIPPED, markdown_table


def training_sentence(cfg) -> str:
    """How the models were trained: the shared settings "for every model", or for every model
    but those with their own ``training`` or an imported ``checkpoint`` (named with theirs)."""
    tr = cfg.training
    shared = f"{tr.epochs} epochs, batch {tr.batch_size}, {tr.described()}"
    own = {name: spec for name, spec in cfg.models.items() if spec.training or spec.checkpoint}
    if not own:
        return f"{shared} for every model"
    others = []
    for name, spec in own.items():
        if spec.checkpoint:
            others.append(f"`{name}` imported from `{spec.checkpoint}`, not trained")
        else:
            t = spec.training_section(tr)
            others.append(f"`{name}` {t.epochs} epochs, batch {t.batch_size}, {t.described()}")
    return f"{shared} for every model but these: " + "; ".join(others) + " (their hyperparameters differ)"


def write_summary(cfg, tables) -> str:
    """Markdown summary of one experiment: its data, runs and inference, the models, then the
    text of every section that applies (``report.section``), in order. ``tables``: the
    report's and the stages' tables by ``store.layout`` name (a ``section.Tables``; a plain
    dict is read through, tables it lacks from ``cfg.results_dir``)."""
    tables = tables if isinstance(tables, Tables) else Tables(cfg.results_dir, tables)
    curves, trained = tables["stats"], tables["models"]
    every = list(cfg.models)
    models = [m for m in every if m in set(curves["model"])]  # those with a run to report
    report = Report(cfg, tables, models)
    split = cfg.dataset
    repetitions = cfg.n_runs // split.folds
    if split.split == "fixed":
        subset = "" if split.test_subset is None else f", {int(trained['n_test'].iloc[0])} test points drawn once"
        runs = f"{cfg.n_runs} Monte Carlo runs on the data set's own train/test split{subset}"
        inference = ("Every run trains and tests on the same points and differs only in its seed, so intervals over "
                     "runs are 95% t-intervals of the seed-to-seed variation on this one test set (neither the test "
                     "set's sampling error nor another training set's is in them); comparisons of two models are "
                     "paired tests on every point, which add the test points' sampling, but no test on one fixed "
                     "training set says how another training set drawn from the same population would do: for a "
                     "claim about the population, re-split (`dataset.split: kfold`)")
    else:
        runs = (f"{cfg.n_runs} Monte Carlo runs ({repetitions} repetition{'s' * (repetitions > 1)} of {split.folds} "
                "stratified folds: "
                "the test sets of one repetition are disjoint)" if split.split == "kfold"
                else f"{cfg.n_runs} Monte Carlo runs (a stratified split re-drawn per run)")
        inference = ("The runs share training data (and, across repetitions, test points), so intervals over runs "
                     "are 95% t-intervals with the variance corrected for that overlap (Nadeau & Bengio 2003: (1/k + "
                     f"n_test/n_train) s², n_test/n_train = {report.ratio:.3g}), a correction that assumes the worst "
                     "and is far too cautious on simulated studies of this design (docs/statistics.md); comparisons "
                     "of two models are paired tests on every point of every run (a point tested in several runs "
                     "counting once), with the corrected resampled t-test beside them as the conservative column")
    names = cfg.dataset.class_names
    classes = (list(cfg.dataset.classes) if names == tuple(map(str, cfg.dataset.classes))
               else ", ".join(f"{c} {n}" for c, n in zip(cfg.dataset.classes, names)))
    intro = (f"Data set `{cfg.dataset.name}` (classes {classes}), {runs}, {training_sentence(cfg)}. "
             f"{inference}; {CLIPPED} marks an interval that reaches past [0, 1], where the normal approximation is poor.")
    degenerate = trained[trained["degenerate"]].groupby("model", sort=False).size()
    lines = [f"# Summary: experiment `{cfg.experiment}`", "", intro]
    if len(degenerate):
        excluded = "left out of every statistic and comparison" if cfg.report.exclude_degenerate else "kept in the statistics"
        lines[-1] += (" Degenerate runs (a single predicted class, or no better than the majority class): "
                      + ", ".join(f"`{m}` {n} of {cfg.n_runs}" for m, n in degenerate.items()) + f", {excluded}.")
    lines += ["", "## Models", ""]
    clean = trained.groupby("model", sort=False).agg(
        parameters=("parameters", "first"), clean_accuracy=("clean_accuracy", "mean"),
        n_test=("n_test", "first"), degenerate_runs=("degenerate", "sum")).reindex(every).reset_index()
    clean["clean_accuracy"] = clean["clean_accuracy"].map("{:.3f}".format)
    lines += [markdown_table(clean), ""]
    silent = [m for m in every if m not in models]
    if silent:
        lines += [", ".join(f"`{m}`" for m in silent) + f" {'is' if len(silent) == 1 else 'are'} degenerate in every "
                  "run: nothing below reports or compares it (its runs collapsed; models.csv says how).", ""]
    for section in applicable(cfg):
        lines += section.text(report)
    return "\n".join(lines)

