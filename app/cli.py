"""The `stategate` command: kafka, node, services, dev, erase, audit."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from .config import Settings
from .logs import configure_logging

if TYPE_CHECKING:
    from .node_process import ApiFactory


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or localhost:9092)")
    parser.add_argument("--data-dir", type=Path, help="where RocksDB tables live (default ./data)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `stategate` command."""
    parser = argparse.ArgumentParser(prog="stategate", description="HTTP request/response over Kafka.")
    commands = parser.add_subparsers(dest="command", required=True)

    kafka = commands.add_parser("kafka", help="run a local Kafka broker, or a cluster of them (KRaft)")
    kafka.add_argument("--port", type=int, help="listener port on 127.0.0.1 (default 9092; more brokers: the next)")
    kafka.add_argument("--brokers", type=int, default=1, choices=range(1, 10), metavar="N", help="brokers (default 1)")
    kafka.add_argument("--data-dir", type=Path, help="broker data (default ./data/kafka)")
    kafka.add_argument(
        "--classpath",
        action="store_true",
        help="print the Java classpath of the broker and Kafka's console tools, then exit",
    )

    node = commands.add_parser("node", help="run one gateway node (Faust worker + HTTP API)")
    _common(node)
    node.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    node.add_argument("--port", type=int, help="HTTP port (default 8080)")
    node.add_argument("--node-id", help="this node's id (default the host name)")
    node.add_argument("--advertised-url", help="the URL clients and other nodes use for this node")

    services = commands.add_parser("services", help="run the order validation services and the example services")
    _common(services)

    dev = commands.add_parser("dev", help="local Kafka, two gateway nodes, the services and demo inventory")
    dev.add_argument("--port", type=int, help="first gateway node's HTTP port (default 8080; the next node +1)")
    dev.add_argument("--nodes", type=int, default=2, help="how many gateway nodes (default 2)")
    dev.add_argument("--kafka-port", type=int, help="local Kafka port (default 9092; more brokers: the next)")
    dev.add_argument(
        "--brokers", type=int, default=1, choices=range(1, 10), metavar="N", help="Kafka brokers (default 1)"
    )
    dev.add_argument("--data-dir", type=Path, help="where everything keeps its data (default ./data/dev)")

    erase = commands.add_parser("erase", help="delete one record, or all of a key's records, from an erasable topic")
    erase.add_argument("--broker", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or localhost:9092)")
    erase.add_argument("--topic", required=True, help="the topic, without the namespace (e.g. orders)")
    erase.add_argument("--key", required=True, help="the business key")
    erase.add_argument("--guid", help="only the record with this GUID (32 lowercase hex characters)")

    audit = commands.add_parser("audit", help="list the records of every topic that still hold an id")
    audit.add_argument("--broker", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or localhost:9092)")
    audit.add_argument("id", help="the id to look for, in keys and values")
    return parser


def main(argv: list[str] | None, create_api: ApiFactory) -> None:
    """Run one `stategate` command; `create_api` builds a node's HTTP API (see `stategate/__main__.py`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM raises SystemExit in the synchronous commands; the async ones install their own handlers.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if args.command == "kafka":
        from .broker import broker_classpath
        from .kafka_cluster import run_kafka

        if args.classpath:
            print(broker_classpath())
            return
        run_kafka(args.port, args.data_dir, args.brokers)
    elif args.command == "node":
        from .node_process import run_node
        from .peers import parse_peer_urls

        settings = _settings(
            parser, args, host=args.host, port=args.port, node_id=args.node_id, advertised_url=args.advertised_url
        )
        try:
            parse_peer_urls(settings.peer_urls)
        except ValueError as exc:
            parser.error(f"STATEGATE_PEER_URLS: {exc}")
        configure_logging(settings.node_id, settings.log_level, settings.kafka_log_level)
        run_node(settings, create_api)
    elif args.command == "services":
        from .services_process import run_services

        settings = _settings(parser, args, node_id="services")
        configure_logging(settings.node_id, settings.log_level, settings.kafka_log_level)
        run_services(settings)
    elif args.command == "dev":
        from .dev import run_dev

        run_dev(
            port=args.port,
            kafka_port=args.kafka_port,
            data_dir=args.data_dir,
            nodes_count=args.nodes,
            brokers=args.brokers,
        )
    elif args.command in ("erase", "audit"):
        _erasure_command(parser, args)


def _erasure_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`stategate erase` (one line per tombstone written) and `stategate audit` (one line per record found)."""
    import asyncio

    from stategate.streams.erasable_keys import business_key, guid_of
    from stategate.streams.erasure_tools import NotCompacted, audit, erase

    settings = Settings.from_env(broker=args.broker)
    if args.command == "audit":
        for found in asyncio.run(audit(settings, args.id)):
            print(found.line())
        return
    topic = settings.topic(args.topic)
    try:
        erased = asyncio.run(erase(settings, topic, args.key, args.guid))
    except (ValueError, LookupError, NotCompacted) as exc:
        parser.error(str(exc))
    for key in erased:
        print(f"tombstone {topic} {business_key(key).decode(errors='replace')} {guid_of(key) or '(plain key)'}")


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace, **extra: object) -> Settings:
    """The settings from the environment and the options; a bad value ends the command with its name."""
    try:
        return Settings.from_env(broker=args.broker, data_dir=args.data_dir, log_level=args.log_level, **extra)
    except ValidationError as exc:
        problems = "; ".join(
            f"STATEGATE_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        parser.error(problems)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)
