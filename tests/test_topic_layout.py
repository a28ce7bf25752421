"""Which topics scale with nodes and which with services processes: the partition counts stategate creates."""

from __future__ import annotations

from pathlib import Path

import faust

from stategate.streams.admin import TopicSpec
from stategate.streams.example_services import ExampleServices
from stategate.streams.faust_app import create_faust_app
from stategate.streams.kafka_settings import KafkaSettings
from stategate.streams.order_checks import OrderServices


def _counts(specs: list[TopicSpec]) -> dict[str, int]:
    return {spec.name: spec.partitions for spec in specs}


def test_the_services_own_topics_and_tables_have_the_services_count(tmp_path: Path) -> None:
    settings = KafkaSettings(partitions=12, services_partitions=4, data_dir=tmp_path)
    counts = _counts(OrderServices(settings).topic_specs)
    assert counts["orders"] == 12  # the nodes' topic: check-details reads it where it is
    for name in (
        "orders-by-customer",
        "orders-by-product",
        "warehouse-inventory",
        "fraud-checked",
        "inventory-checked",
        "inventory-requests",
        "customer-orders-requests",
        "stategate-services-customer-orders-changelog",
    ):
        assert counts[name] == 4, name


def test_the_example_services_request_topics_and_tables_have_the_services_count(tmp_path: Path) -> None:
    settings = KafkaSettings(partitions=12, services_partitions=3, data_dir=tmp_path)
    app: faust.App = create_faust_app("examples-test", settings)
    counts = _counts(ExampleServices(app, settings).topic_specs)
    assert counts["echo-requests"] == counts["customers-requests"] == counts["basket-requests"] == 3
    assert counts["examples-test-customers-changelog"] == counts["examples-test-baskets-changelog"] == 3
