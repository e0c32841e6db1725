"""Runs a notebook of notebooks/ top to bottom (nbclient + ipykernel), as the notebook tests do."""

import os
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, workdir: Path) -> tuple[str, list[dict]]:
    """Executes ``notebooks/NAME`` with ``workdir`` as its working directory; returns the text
    of its outputs, joined, and its PNG outputs. The kernel inherits the environment
    (``BSNN_NOTEBOOK_SHORT=1`` set by the test, the session's compilation cache of conftest.py),
    with ``workdir`` as its temporary directory: what a notebook writes there goes with the test's."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env={**os.environ, "TMPDIR": str(workdir)})  # passed on to the kernel manager's start_kernel
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    return "\n".join(out.get("text", "") for out in outputs), [out for out in outputs if "image/png" in out.get("data", {})]
