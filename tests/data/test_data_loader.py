"""The grain loader: epochs, determinism, sharding, exact resume, batch format."""

import json

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from bsnn_jax import data
from bsnn_jax.data.base import IDENTITY, ArraySource, Dataset, DatasetInfo


def index_dataset(n, *, train_transform=None, eval_transform=None):
    """Record i's image is the scalar i, so a batch tells which records it holds."""
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    source = ArraySource(images, np.arange(n) % 3)
    info = DatasetInfo("index", 3, (1, 1, 1), None, n, n)
    return Dataset(info, source, source, IDENTITY, train_transform, eval_transform)


def ids(batch):
    return batch["image"].reshape(len(batch["image"]), -1)[:, 0].astype(int).tolist()


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_each_epoch_is_a_new_permutation():
    loader = data.make_loader(index_dataset(10), batch_size=3, seed=0, shard=(0, 1))
    assert loader.steps_per_epoch == 3  # 10 // 3: each epoch drops its last partial batch
    batches = take(iter(loader), 9)
    epochs = [sum((ids(b) for b in batches[e * 3 : (e + 1) * 3]), []) for e in range(3)]
    for epoch in epochs:
        assert len(set(epoch)) == 9 and set(epoch) <= set(range(10))
    assert epochs[0] != epochs[1] != epochs[2]


def test_same_seed_same_batches_other_seed_other_batches():
    def first(seed):
        loader = data.make_loader(index_dataset(50), batch_size=5, seed=seed, shard=(0, 1))
        return [ids(b) for b in take(iter(loader), 4)]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_num_epochs_ends_the_iterator():
    batches = list(data.make_loader(index_dataset(10), batch_size=5, num_epochs=2, shard=(0, 1)))
    assert len(batches) == 4


def test_test_split_keeps_the_remainder_in_order():
    loader = data.make_loader(index_dataset(10), "test", batch_size=4, shard=(0, 1))
    assert [ids(b) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert loader.steps_per_epoch == 3


def test_two_shards_partition_the_data():
    dataset = index_dataset(11)
    one = next(iter(data.make_loader(dataset, batch_size=6, shard=(0, 1))))
    train = [ids(next(iter(data.make_loader(dataset, batch_size=6, shard=(i, 2))))) for i in range(2)]
    # Host i holds the contiguous half i of the global batch the single host reads.
    assert train == [ids(one)[:3], ids(one)[3:]] and len(set(ids(one))) == 6
    test = [sum((ids(b) for b in data.make_loader(dataset, "test", batch_size=8, shard=(i, 2))), []) for i in range(2)]
    assert test == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9]]


@pytest.mark.parametrize("hosts", [2, 4])
def test_every_topology_reads_the_same_global_batches_with_the_same_augmentation(hosts):
    """Global batch k of every epoch, and each record's augmentation, depend on (seed, epoch,
    position) only: the hosts' slices of a global batch, put side by side, are the single host's
    batch, augmented pixels included, over three epochs."""
    dataset = index_dataset(30, train_transform=add_random_offset)
    single = take(iter(data.make_loader(dataset, batch_size=8, seed=5, shard=(0, 1))), 9)  # 3 per epoch
    parts = [take(iter(data.make_loader(dataset, batch_size=8, seed=5, shard=(i, hosts))), 9) for i in range(hosts)]
    for k, whole in enumerate(single):
        joined = {key: np.concatenate([p[k][key] for p in parts]) for key in whole}
        np.testing.assert_array_equal(joined["label"], whole["label"], err_msg=f"global batch {k}")
        np.testing.assert_array_equal(joined["image"], whole["image"], err_msg=f"global batch {k}")
    assert not np.array_equal(single[0]["label"], single[3]["label"])  # reshuffled at the epoch boundary


def test_default_shard_is_this_process():
    dataset = index_dataset(20)
    default = take(iter(data.make_loader(dataset, batch_size=4, seed=3)), 3)
    explicit = take(iter(data.make_loader(dataset, batch_size=4, seed=3, shard=(0, 1))), 3)
    assert [ids(b) for b in default] == [ids(b) for b in explicit]


def add_random_offset(image, rng):
    return image + 1000 * rng.integers(1, 1000)


def test_resume_from_saved_state_replays_exactly():
    dataset = index_dataset(10, train_transform=add_random_offset)

    def loader():
        return data.make_loader(dataset, batch_size=3, seed=7, shard=(0, 1))

    uninterrupted = take(iter(loader()), 12)
    first = iter(loader())
    take(first, 5)
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint would store
    resumed = iter(loader())  # a new process would build the pipeline again
    resumed.set_state(state)
    for expected, got in zip(uninterrupted[5:12], take(resumed, 7), strict=True):  # crosses two epoch boundaries
        np.testing.assert_array_equal(expected["image"], got["image"])
        np.testing.assert_array_equal(expected["label"], got["label"])


def test_augmentation_is_per_record_and_changes_every_epoch():
    dataset = index_dataset(6, train_transform=add_random_offset)
    loader = data.make_loader(dataset, batch_size=6, seed=0, shard=(0, 1))
    epoch1, epoch2 = take(iter(loader), 2)
    offsets1 = (epoch1["image"].ravel() // 1000).astype(int)
    assert len(set(offsets1.tolist())) > 1  # each record draws its own
    # Same record (image % 1000), new offset: the augmentation is redrawn every epoch.
    assert sorted(epoch1["image"].ravel().tolist()) != sorted(epoch2["image"].ravel().tolist())
    no_aug = next(iter(data.make_loader(dataset, batch_size=6, seed=0, augment=False, shard=(0, 1))))
    assert (no_aug["image"] < 1000).all()


def test_eval_transform_applies_to_test_and_unaugmented_train():
    dataset = index_dataset(4, train_transform=add_random_offset, eval_transform=lambda x: -x)
    test = next(iter(data.make_loader(dataset, "test", batch_size=4, shard=(0, 1))))
    assert ids(test) == [0, -1, -2, -3]
    train = next(iter(data.make_loader(dataset, batch_size=4, augment=False, shard=(0, 1))))
    assert sorted(ids(train)) == [-3, -2, -1, 0]


def test_batches_are_normalized_float32_and_int32():
    ds = data.load("digits")
    batch = next(iter(data.make_loader(ds, "test", batch_size=16, shard=(0, 1))))
    assert batch["image"].shape == (16, 8, 8, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32
    train = ds.train.images / 16.0
    expected = (ds.test.images[:16] / 16.0 - train.mean()) / train.std()
    np.testing.assert_allclose(batch["image"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(batch["label"], ds.test.labels[:16])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split="valid", batch_size=2), "split must be"),
        (dict(batch_size=11), "batch_size 11 exceeds the 10"),
        (dict(batch_size=2, shard=(2, 2)), "shard index 2"),
        (dict(batch_size=3, shard=(0, 2)), "global batch size 3 does not split over 2 hosts"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.make_loader(index_dataset(10), **{"shard": (0, 1), **kwargs})


def test_record_generators_depend_only_on_their_seed():
    from bsnn_jax.data.loader import _record_generators

    def fresh(seed, n):
        return np.random.Generator(np.random.Philox(key=[seed, 0])).random(n)

    draws = [g.random(n) for g, n in zip(_record_generators([5, 6, 5]), (1, 3, 2), strict=True)]
    # Whatever the previous record consumed, each stream restarts from its own key.
    np.testing.assert_array_equal(draws[0], fresh(5, 1))
    np.testing.assert_array_equal(draws[1], fresh(6, 3))
    np.testing.assert_array_equal(draws[2], fresh(5, 2))


def test_iterator_position_round_trips_through_orbax(tmp_path):
    loader = data.make_loader(index_dataset(20, train_transform=add_random_offset), batch_size=3, seed=2, shard=(0, 1))
    it = iter(loader)
    take(it, 8)
    manager = ocp.CheckpointManager(tmp_path, item_handlers={"data": grain.checkpoint.CheckpointHandler()})
    manager.save(8, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = take(it, 3)
    restored = iter(loader)
    manager.restore(8, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    for a, b in zip(expected, take(restored, 3), strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
