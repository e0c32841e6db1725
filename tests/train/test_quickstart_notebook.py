"""notebooks/quickstart.ipynb runs top to bottom (nbclient + ipykernel) in its short mode and
reports a trained model. The accuracy of the 300 steps the notebook trains by default is the
80% floor of test_train_demo_short.py (the same model and recipe through ``bsnn train``)."""

from notebook_runner import execute  # tests/ is on sys.path (rootdir conftest)


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNN_NOTEBOOK_SHORT", "1")  # 100 steps instead of 300
    text, images = execute("quickstart.ipynb", tmp_path)
    assert "100 steps in" in text and "(2,000 test images)" in text and "firing rate" in text
    assert len(images) == 1  # the loss curve
    accuracy = float(text.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 60.0  # well above chance (10%); 100 steps of batch 32 gave 77.3-78.1% over seeds 0-2
