"""The study's stages, one module per notebook, each with ``run(cfg)``.

``graph`` declares them once (inputs, outputs, config sections, code); the Makefile, the
provenance record and the units of work all read that declaration. Import the stage modules
themselves (``from helpers.stages import train``); this package imports nothing heavy.
"""
import warnings

# Captum imports ``tqdm.auto``, which in a notebook kernel without ipywidgets warns that it
# falls back to its text bar. Nothing here uses Captum's bars, and the stages' own bars are
# text by design (helpers/stages/progress.py), so the warning says nothing about our run.
warnings.filterwarnings("ignore", message="IProgress not found")
