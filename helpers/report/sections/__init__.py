"""The report's sections, one module each (``report.section``): every module here registers
one ``Section`` in ``SECTIONS``; the report iterates those that apply, in their ``order``."""
