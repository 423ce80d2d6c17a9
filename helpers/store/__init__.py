"""Where results live: the experiment folder's layout, atomic files, checkpoints, finished
units of work keyed by what produced them, and the provenance record.

Kept free of heavy imports (``layout`` is read by the Makefile through the stage graph);
import from the modules: ``files``, ``checkpoints``, ``units``, ``layout``, ``provenance``.
"""
