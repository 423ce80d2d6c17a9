"""The study's stages, one module per notebook, each with ``run(cfg)``.

``graph`` declares them once (inputs, outputs, config sections, code); the Makefile, the
provenance record and the units of work all read that declaration. Import the stage modules
themselves (``from helpers.stages import train``); this package imports nothing heavy.
"""
