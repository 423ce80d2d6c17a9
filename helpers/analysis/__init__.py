"""Analysis of the result tables: the robustness evaluation of one run (``evaluation``),
statistics across runs (``statistics``) and the gradient-masking checks (``masking``)."""
