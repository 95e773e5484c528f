"""The batch partitioner picks exactly the partition Kafka's default partitioner picks for each key."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2

from fraudops_scorer.partitioner import murmur2 as batch_murmur2
from fraudops_scorer.partitioner import partitions_for


def _keys(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", bytes([0xFF] * 9), "tx-é-ü".encode()]
    keys += [rng.randbytes(rng.randrange(0, 70)) for _ in range(count)]
    keys += [f"tx-{rng.randrange(10**12)}".encode() for _ in range(count)]
    return keys


@pytest.mark.parametrize("seed", range(3))
def test_murmur2_of_a_batch_equals_the_clients_one_key_at_a_time(seed: int) -> None:
    keys = _keys(seed, 500)
    assert batch_murmur2(keys).tolist() == [murmur2(key) & 0xFFFFFFFF for key in keys]


@pytest.mark.parametrize("partitions", [[0], [0, 1, 2], list(range(12)), [0, 2, 5, 7]])
def test_partitions_equal_the_default_partitioners(partitions: list[int]) -> None:
    keys = _keys(9, 300)
    expected = [DefaultPartitioner()(key, partitions, partitions) for key in keys]
    assert partitions_for(keys, partitions) == expected
    assert partitions_for(keys[:5], partitions) == expected[:5]  # small batches take the client's own hash


def test_an_empty_batch_has_no_partitions() -> None:
    assert partitions_for([], [0, 1]) == []
