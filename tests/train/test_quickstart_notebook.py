"""notebooks/quickstart.ipynb runs top to bottom (nbclient + ipykernel) and reports a trained model."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))
    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert "300 steps in" in text and "test accuracy" in text and "firing rate" in text
    assert len(images) == 1  # the loss curve
    accuracy = float(text.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 60.0  # 300 steps of batch 32: well above chance (10%)
