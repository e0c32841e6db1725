"""notebooks/quickstart.ipynb runs top to bottom (nbclient + ipykernel) and reports a trained model."""

from notebook_runner import execute  # tests/ is on sys.path (rootdir conftest)


def test_quickstart_notebook_executes(tmp_path):
    text, images = execute("quickstart.ipynb", tmp_path)
    assert "300 steps in" in text and "test accuracy" in text and "firing rate" in text
    assert len(images) == 1  # the loss curve
    accuracy = float(text.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 60.0  # 300 steps of batch 32: well above chance (10%)
