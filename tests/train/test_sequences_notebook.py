"""notebooks/sequences.ipynb runs top to bottom: encoders, a binary spiking MLP on sequential digits, its raster."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "sequences.ipynb"


def test_sequences_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))
    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) == 2  # the encoders and the raster
    rate, intensity = (float(v) for v in text.split("rate: mean spike probability ")[1].split("\n")[0].split(" vs mean intensity "))
    assert abs(rate - intensity) < 0.05  # 20 x 64 Bernoulli draws
    assert text.count("firing rate lifs.") == 3
    accuracy = float(text.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 50.0  # 10 classes: chance is 10%
