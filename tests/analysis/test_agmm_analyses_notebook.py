"""notebooks/agmm_analyses.ipynb runs top to bottom in its short mode and draws its four analyses."""

from notebook_runner import execute  # tests/ is on sys.path (rootdir conftest)


def test_agmm_analyses_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNN_NOTEBOOK_SHORT", "1")  # digits, 2 x 8 steps per variant, a 3x3 landscape
    text, images = execute("agmm_analyses.ipynb", tmp_path)
    for marker in ("flip ratio per epoch", "firing rate per layer", "gradient variance per epoch", "lowest on the grid"):
        assert text.count(marker) >= 2, marker
    assert len(images) == 5  # flip ratio, firing rates, gradient variance, two landscapes
