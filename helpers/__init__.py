"""Reusable pieces of the qml-robustness study.

Data flows one way: config -> data -> models -> training -> checkpoints -> attacks ->
attributions -> tables -> figures -> summary. Each module holds one of those stages;
``pipeline`` strings them together into the four notebook stages.
"""
