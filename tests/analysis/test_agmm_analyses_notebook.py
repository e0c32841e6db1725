"""notebooks/agmm_analyses.ipynb runs top to bottom in its short mode and draws its four analyses."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "agmm_analyses.ipynb"


def test_agmm_analyses_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNN_NOTEBOOK_SHORT", "1")  # digits, 2 x 8 steps per variant, a 3x3 landscape
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    text = "\n".join(out.get("text", "") for out in outputs)
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    for marker in ("flip ratio per epoch", "firing rate per layer", "gradient variance per epoch", "lowest on the grid"):
        assert text.count(marker) >= 2, marker
    assert len(images) == 5  # flip ratio, firing rates, gradient variance, two landscapes
