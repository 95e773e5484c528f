"""The topic catalogue is well formed and names only known schemas."""

from fraudops.contracts.avro import default_codec
from fraudops.contracts.topics import load_topic_catalog


def test_catalog_names_the_platform_topics() -> None:
    names = {t.name for t in load_topic_catalog().topics}
    assert names == {"transactions", "scores", "scores.shadow", "labels", "model-events", "transactions.dlq"}


def test_every_topic_carries_a_known_schema() -> None:
    known = set(default_codec().catalog.names)
    for topic in load_topic_catalog().topics:
        assert topic.value_schema in known, topic.name


def test_keys_follow_the_design() -> None:
    catalog = load_topic_catalog()
    assert catalog.get("transactions").key == "customer_id"
    assert catalog.get("scores").key == "transaction_id"
    assert catalog.get("labels").key == "transaction_id"
