"""notebooks/deploy.ipynb runs top to bottom in its short mode (a few steps on digits) and compares three models."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "deploy.ipynb"


def test_deploy_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNN_NOTEBOOK_SHORT", "1")  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))
    names = ("trained (float)", ".bsnn reloaded", "NIR imported")
    rows = {name: line.split() for line in text.splitlines() for name in names if line.startswith(name)}
    assert set(rows) == set(names), text
    for name in (".bsnn reloaded", "NIR imported"):
        assert float(rows[name][-1].rstrip("%")) >= 99.0, text  # same class as the trained model
    assert "1 value each" in text  # binary kernels: one magnitude per output channel
    assert "imported: nir binary" in text
