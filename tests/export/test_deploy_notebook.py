"""notebooks/deploy.ipynb runs top to bottom in its short mode (a few steps on digits) and compares three models."""

from notebook_runner import execute  # tests/ is on sys.path (rootdir conftest)


def test_deploy_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNN_NOTEBOOK_SHORT", "1")  # the kernel inherits the environment
    text, _ = execute("deploy.ipynb", tmp_path)
    names = ("trained (float)", ".bsnn reloaded", "NIR imported")
    rows = {name: line.split() for line in text.splitlines() for name in names if line.startswith(name)}
    assert set(rows) == set(names), text
    for name in (".bsnn reloaded", "NIR imported"):
        assert float(rows[name][-1].rstrip("%")) >= 99.0, text  # same class as the trained model
    assert "1 value each" in text  # binary kernels: one magnitude per output channel
    assert "binary layers ['units.1', 'units.2']" in text  # the imported graph holds the binary convs as binary layers
