"""notebooks/sequences.ipynb runs top to bottom: encoders, a binary spiking MLP on sequential digits, its raster."""

from notebook_runner import execute  # tests/ is on sys.path (rootdir conftest)


def test_sequences_notebook_executes(tmp_path):
    text, images = execute("sequences.ipynb", tmp_path)
    assert len(images) == 2  # the encoders and the raster
    rate, intensity = (float(v) for v in text.split("rate: mean spike probability ")[1].split("\n")[0].split(" vs mean intensity "))
    assert abs(rate - intensity) < 0.05  # 20 x 64 Bernoulli draws
    assert text.count("firing rate lifs.") == 3
    accuracy = float(text.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 50.0  # 10 classes: chance is 10%
