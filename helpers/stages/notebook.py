"""Executing one stage notebook for ``make``: papermill with the project's kernel and the
config injected as ``config_path``, run in ``notebooks/`` (the notebook's own folder, as in
JupyterLab), with three settings papermill's command line cannot make:

- the kernel talks to this process over IPC (Unix sockets in a private temporary folder)
  instead of TCP on localhost: no port is opened to other users of the machine, which is
  what ipykernel's warning about unencrypted TCP is about (it is not printed for IPC);
- the kernel's stderr (the stages' progress bars, warnings) reaches the terminal as it is
  written;
- each cell's streams are coalesced with carriage returns applied, so the executed notebook
  keeps a progress bar's last state instead of every redraw.

``python -m helpers.stages.notebook SOURCE OUTPUT CONFIG [KERNEL]`` (the Makefile's stage rules).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..store.graph import ROOT

KERNEL = "qml-robustness"  # the kernel `make env` installs into the environment


def kernel_config(socket_dir: str):
    """The kernel manager's settings: IPC sockets under ``socket_dir`` where the platform has
    Unix sockets, else papermill's default (TCP on localhost)."""
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(Path(socket_dir) / "kernel")}})


def execute(source: str | Path, output: str | Path, config_path: str, kernel: str = KERNEL, stderr=None,
            parameter: str = "config_path") -> None:
    """Execute notebook ``source`` with ``config_path`` injected into its parameters (as
    ``parameter``: a sweep's notebook takes ``sweep_path``) and save
    it to ``output``; the kernel's stderr streams to ``stderr`` (default: this process's).
    Raises papermill's ``PapermillExecutionError`` when a cell fails (``output`` then holds
    the notebook up to the failing cell and its traceback)."""
    import papermill

    # A short private folder: a Unix socket's path is limited to about 100 characters.
    with tempfile.TemporaryDirectory(prefix="qmlr-") as sockets:
        papermill.execute_notebook(str(source), str(output), parameters={parameter: config_path},
                                   kernel_name=kernel, cwd=str(ROOT / "notebooks"), progress_bar=False,
                                   stderr_file=stderr or sys.stderr, config=kernel_config(sockets),
                                   coalesce_streams=True)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: python -m helpers.stages.notebook SOURCE OUTPUT CONFIG [KERNEL]", file=sys.stderr)
        return 2
    from papermill.exceptions import PapermillExecutionError

    try:
        execute(*argv)
    except PapermillExecutionError as error:
        # make keeps a failed run as <stage>.failed.ipynb (the Makefile's papermill recipe renames it).
        kept = argv[1].replace(".running.ipynb", ".failed.ipynb")
        print(f"{argv[0]} failed (the executed notebook is kept as {kept}):\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
