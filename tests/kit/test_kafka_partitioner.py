"""The producers' partitioner: a subject's events go to the partition Kafka's own (Java)
clients pick for its key, whoever sends them (the relay, the gateway), also once the
hashes it keeps were forgotten."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from kit.kafka import KeyHashPartitioner


def test_each_key_goes_where_the_default_partitioner_sends_it_also_after_forgetting() -> None:
    kept = KeyHashPartitioner(max_keys=8)
    default = DefaultPartitioner()
    subjects = [f"acc_{index:020d}".encode() for index in range(40)]
    for partitions in (1, 3, 7, 12):
        every = list(range(partitions))
        for _ in range(3):  # again: from the kept hashes, and after they were forgotten
            for key in subjects:
                assert kept(key, every, every) == default(key, every, every)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert KeyHashPartitioner()(None, [0, 1, 2], [2]) == 2
