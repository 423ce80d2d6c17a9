"""``make lab`` starts JupyterLab on ``notebooks/``, as root too (most containers run as root,
where Jupyter refuses to start without ``--allow-root``), and its kernels start."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the virtual environment running the tests (its python is a link out of it)
TOKEN = "qmlr-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, path: str, method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/{path}?token={TOKEN}", method=method,
                                     data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_make_lab_serves_the_notebooks_and_starts_a_kernel():
    port = free_port()
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN}"
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"VENV={VENV}", f"LAB_ARGS={args}"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status = api(port, "status")
                break
            except OSError:
                assert lab.poll() is None, f"make lab stopped (as uid {os.getuid()}):\n{lab.stdout.read()[-3000:]}"
                assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        assert "started" in status
        names = {item["name"] for item in api(port, "contents")["content"]}
        assert {"01_train.ipynb", "04_report.ipynb"} <= names  # it serves notebooks/
        kernel = api(port, "kernels", method="POST")
        assert kernel["name"] in {"python3", "qml-robustness"} and kernel["id"]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()
