"""Failover torture for the gateway's order view: `python -m bench.torture --rounds 50`.

Each round writes order versions straight to `orders` (one every few ms: new
orders, and next versions of orders written before) while one thing happens
to the gateway nodes: a SIGKILL, a SIGTERM, or a node joining. When the
cluster has settled, the missing node is put back (or the joined one
leaves), the writes stop, and the round checks what a client would see:

- every record of every partition is applied by the partition's owner: its
  applied offset (from `/v1/cluster`) is the partition's end offset − 1;
- every order reads back, through any node, at the last version written.

It prints one line per round and a summary (losses: goal 0; time to ready
per action) and saves JSON in bench/results/. The test suite runs a few
rounds (tests/test_failover_torture.py); this runs as many as you like.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stategate.app.broker import LocalKafka
from stategate.streams.erasable_keys import business_key
from stategate.streams.topics import INVENTORY_CHECKED
from tests.processes import Node, Stategate, system_env, wait_for

from .harness import broker_process, print_table, save_result

ACTIONS = ("kill", "term", "join")  # and "broker": restart the broker (needs one of the torture's own)
PARTITIONS = 4
WRITE_INTERVAL_SECONDS = 0.004
SETTLE_TIMEOUT_SECONDS = 60.0
ORDER = {"customer_id": "c1", "product": "JUMPERS", "quantity": 1, "price": 1.0, "state": "CREATED"}


@dataclass
class RoundResult:
    """What one round did and found."""

    round: int
    action: str
    target: str
    written: int
    seconds_to_ready: float
    seconds_to_ready_again: float
    unapplied_records: int
    wrong_orders: int
    problems: list[str] = field(default_factory=list)
    reserved_minus_validated: dict[str, int] = field(default_factory=dict)  # services: this round's units per product

    @property
    def lost(self) -> bool:
        return self.unapplied_records > 0 or self.wrong_orders > 0


class Torture:
    """Gateway nodes in a namespace of their own, and rounds of trouble for them."""

    def __init__(
        self,
        bootstrap: str,
        root: Path,
        nodes: int,
        standby: int,
        partitions: int = 4,
        seed: int = 1,
        broker: LocalKafka | None = None,
    ):
        self.bootstrap = bootstrap
        self.broker = broker  # restarted by the "broker" trouble
        self.namespace = f"torture-{random.Random().getrandbits(32):08x}"
        self.env = system_env(bootstrap, self.namespace, STATEGATE_STANDBY_REPLICAS=str(standby))
        self.env["STATEGATE_PARTITIONS"] = str(partitions)
        self.env["STATEGATE_LOG_LEVEL"] = "WARNING"
        self.partitions = partitions
        self.nodes = [Node(root / f"node-{i}", self.env, node_id=f"node-{i}") for i in range(1, nodes + 1)]
        self.extra = Node(root / "node-extra", self.env, node_id="node-extra")
        self.random = random.Random(seed)

    @property
    def topic(self) -> str:
        return f"{self.namespace}.orders"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.settle(list(self.nodes))

    def stop(self) -> None:
        for node in [*self.nodes, self.extra]:
            node.stop()

    def generation(self, live: list[Stategate]) -> int:
        """Nodes are not told apart by generation: `settle` waits for the members to match instead."""
        return 0

    def settle(self, live: list[Stategate], after: int = 0) -> float:
        """Wait until every live node is ready and sees exactly the live members; seconds waited."""
        started = time.monotonic()
        nodes = [node for node in live if isinstance(node, Node)]
        urls = sorted(node.url for node in nodes)

        def settled() -> bool:
            for node in nodes:
                if not node.is_ready():
                    return False
                try:
                    cluster = httpx.get(f"{node.url}/v1/cluster", timeout=2).json()
                except httpx.HTTPError:
                    return False
                seen = sorted(n["url"] for n in cluster["nodes"] if n["partitions"])
                if seen != urls and len(urls) <= self.partitions:
                    return False
                if not all(n["answers"] for n in cluster["nodes"]):
                    return False
            return True

        wait_for(settled, SETTLE_TIMEOUT_SECONDS, f"{len(live)} nodes settled", interval=0.05)
        return time.monotonic() - started

    async def round(self, number: int, action: str) -> RoundResult:
        """Write steadily while `action` happens; put things back; check every record and order."""
        written: dict[str, int] = {}
        stop_writing = asyncio.Event()
        writer = asyncio.create_task(self._write(f"r{number}", written, stop_writing))
        live: list[Stategate] = list(self.nodes)
        if action == "broker":
            target_name, to_ready, to_ready_again = "broker", await self._restart_broker(), 0.0
        else:
            target, to_ready, to_ready_again, live = await trouble(self, action, list(self.nodes), self.extra)
            target_name = target.data_dir.name
        stop_writing.set()
        await writer
        result = RoundResult(number, action, target_name, len(written), to_ready, to_ready_again, 0, 0)
        await self._check([node for node in live if isinstance(node, Node)], written, result)
        return result

    async def _restart_broker(self) -> float:
        """Stop the broker and start it again while the writes go on; seconds until the nodes have settled."""
        assert self.broker is not None, "the broker trouble needs a broker of the torture's own"
        await asyncio.sleep(1.0)  # writes before the trouble
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.broker.start)
        to_ready = await asyncio.to_thread(self.settle, list(self.nodes))
        await asyncio.sleep(1.0)  # writes after it
        return to_ready

    async def _write(self, prefix: str, written: dict[str, int], stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            count = 0
            sends = []
            started = time.monotonic()
            while not stop.is_set():
                if count % 2 == 0 or count < 200:
                    order_id, version = f"{prefix}-{count:06d}", 1
                else:  # the next version of an order written 199 records before
                    order_id, version = f"{prefix}-{count - 199:06d}", 2
                value = orjson.dumps({**ORDER, "id": order_id, "version": version})
                sends.append(await producer.send(self.topic, key=order_id.encode(), value=value))
                written[order_id] = version
                count += 1
                await asyncio.sleep(max(0.0, started + count * WRITE_INTERVAL_SECONDS - time.monotonic()))
            for sent in sends:
                await sent  # every record acknowledged before the round checks
        finally:
            await producer.stop()

    async def _check(self, live: list[Node], written: dict[str, int], result: RoundResult) -> None:
        ends = await self._end_offsets()
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as http:
            while True:
                behind: dict[int, int] = {}
                for node in live:
                    view = (await http.get(f"{node.url}/v1/cluster")).json().get("view")
                    if view is None:  # a gateway from before the order view: only the orders are checked
                        behind = dict.fromkeys(range(self.partitions), 0)
                        break
                    for partition in view["active"]:
                        applied = view["applied"][str(partition)]
                        behind[partition] = ends[partition] - 1 - applied
                missing = {p: ends[p] for p in range(self.partitions) if p not in behind}
                if (not any(behind.values()) and not missing) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            result.unapplied_records = sum(max(0, n) for n in behind.values()) + sum(missing.values())
            if result.unapplied_records:
                result.problems.append(f"records not applied by their owner: {behind}, unowned: {missing}")
            wrong = await self._wrong_orders(http, live, written)
        result.wrong_orders = len(wrong)
        if wrong:
            result.problems.append(f"orders not at their last version: {wrong[:10]}")

    async def _wrong_orders(self, http: httpx.AsyncClient, live: list[Node], written: dict[str, int]) -> list[str]:
        wrong: list[str] = []
        gate = asyncio.Semaphore(16)

        async def check(i: int, order_id: str, version: int) -> None:
            deadline = time.monotonic() + 10
            async with gate:
                answer = await http.get(f"{live[i % len(live)].url}/v1/orders/{order_id}")
                while answer.status_code == 503 and time.monotonic() < deadline:  # as a client is told to
                    await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                    answer = await http.get(f"{live[i % len(live)].url}/v1/orders/{order_id}")
            if answer.status_code != 200 or answer.json()["version"] != version:
                wrong.append(f"{order_id}: {answer.status_code} {answer.text[:80]}")

        await asyncio.gather(*(check(i, k, v) for i, (k, v) in enumerate(written.items())))
        return wrong

    async def _end_offsets(self) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()


async def run_rounds(
    torture: Torture | ServicesTorture, rounds: int, actions: tuple[str, ...] = ACTIONS
) -> list[RoundResult]:
    """`rounds` rounds, cycling through `actions`; prints a line per round."""
    results = []
    for number in range(rounds):
        result = await torture.round(number, actions[number % len(actions)])
        print(
            f"round {number:3d} {result.action:4s} {result.target:10s} written {result.written:5d}  "
            f"ready {result.seconds_to_ready:5.1f}s / {result.seconds_to_ready_again:5.1f}s  "
            f"unapplied {result.unapplied_records}  wrong {result.wrong_orders}",
            *result.problems,
            flush=True,
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--standby", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--actions", default=",".join(ACTIONS), help="which troubles, in turn (kill,term,join)")
    parser.add_argument("--target", choices=("nodes", "services"), default="nodes", help="whom the trouble hits")
    args = parser.parse_args()
    actions = tuple(args.actions.split(","))
    with tempfile.TemporaryDirectory(prefix="stategate-torture-") as tmp, broker_process(Path(tmp)) as (bootstrap, own):
        # The broker trouble restarts the run's own broker (not one named by KAFKA_BOOTSTRAP_SERVERS).
        torture: Torture | ServicesTorture
        if args.target == "services":
            assert "broker" not in actions, "the broker trouble is for --target nodes"
            torture = ServicesTorture(bootstrap, Path(tmp), args.standby, seed=args.seed)
        else:
            torture = Torture(bootstrap, Path(tmp), args.nodes, args.standby, seed=args.seed, broker=own)
        torture.start()
        try:
            results = asyncio.run(run_rounds(torture, args.rounds, actions))
        finally:
            torture.stop()
    rows = []
    for action in (*ACTIONS, "broker"):
        mine = [r for r in results if r.action == action]
        if mine:
            ready = [r.seconds_to_ready for r in mine]
            rows.append(
                (
                    action,
                    str(len(mine)),
                    str(sum(r.written for r in mine)),
                    str(sum(r.lost for r in mine)),
                    f"{statistics.median(ready):.1f} s",
                    f"{max(ready):.1f} s",
                )
            )
    print_table(("action", "rounds", "records written", "rounds with losses", "ready p50", "ready max"), rows)
    saved = save_result(
        "torture", {"nodes": args.nodes, "standby": args.standby, "rounds": [asdict(r) for r in results]}
    )
    print(f"saved {saved}")


class ServicesTorture:
    """One gateway node and two `stategate services` processes; rounds of trouble for the services.

    Orders go through the gateway (POST without waiting) while a services
    process is SIGKILLed, SIGTERMed, or joins. After each round every order
    must reach VALIDATED (stock and customers are plentiful, so all pass), and
    the `inventory` table (read from its changelog topic, `inventory-checked`)
    must hold, for each product, exactly the units of its validated orders
    as reserved: a reservation lost or counted twice shows as a difference.
    """

    products = [f"T-{k}" for k in range(8)]

    def __init__(self, bootstrap: str, root: Path, standby: int, seed: int = 1):
        self.bootstrap = bootstrap
        self.namespace = f"torture-s-{random.Random().getrandbits(32):08x}"
        self.env = system_env(bootstrap, self.namespace, STATEGATE_STANDBY_REPLICAS=str(standby))
        self.env["STATEGATE_LOG_LEVEL"] = "DEBUG"  # each commit is logged: a duplicate can be traced
        self.env["STATEGATE_PARTITIONS"] = str(PARTITIONS)
        self.node = Node(root / "node", self.env, node_id="node")
        self.services = [Stategate("services", root / f"services-{i}", self.env) for i in (1, 2)]
        self.extra = Stategate("services", root / "services-extra", self.env)
        self.random = random.Random(seed)
        self.quantities: dict[str, tuple[str, int]] = {}  # order id -> (product, quantity)
        self._differences: dict[str, int] = {}  # reserved minus validated units after the last round

    @property
    def units(self) -> int:
        """Units ordered so far, in all rounds."""
        return sum(quantity for _, quantity in self.quantities.values())

    def start(self) -> None:
        for services in self.services:
            services.start()
        self.node.start_and_wait()
        for services in self.services:
            services.wait_services_ready()
        for product in self.products:
            answer = httpx.put(f"{self.node.url}/v1/inventory/{product}", json={"stock": 1_000_000_000}, timeout=10)
            answer.raise_for_status()
        # Stock and orders are different topics: an order checked before its product's stock
        # level is applied fails. One order per product, validated, shows the stock is in place.
        for product in self.products:
            body = {"customer_id": f"probe-{product}", "product": product, "quantity": 1, "price": 1.0}
            deadline = time.monotonic() + 30
            while True:
                answer = httpx.post(f"{self.node.url}/v1/orders?wait_for=VALIDATED", json=body, timeout=30)
                if answer.json().get("state") == "VALIDATED":
                    self.quantities[answer.json()["id"]] = (product, 1)
                    break
                assert time.monotonic() < deadline, f"stock of {product} not applied: {answer.text}"
                body = {**body, "customer_id": f"{body['customer_id']}-again"}

    def stop(self) -> None:
        self.node.stop()
        for services in [*self.services, self.extra]:
            services.stop()

    def generation(self, live: list[Stategate]) -> int:
        return max((s.services_generation() or 0) for s in live)

    def settle(self, live: list[Stategate], after: int) -> float:
        """Wait until every live services process is ready in one generation newer than `after`."""
        started = time.monotonic()

        def settled() -> bool:
            generations = {s.services_generation() for s in live}
            return len(generations) == 1 and (generations.pop() or 0) > after

        wait_for(settled, SETTLE_TIMEOUT_SECONDS, "services ready in a new generation", 0.05)
        return time.monotonic() - started

    async def round(self, number: int, action: str) -> RoundResult:
        """Place orders steadily while `action` happens; put things back; check orders and reservations."""
        placed: list[str] = []
        stop_placing = asyncio.Event()
        placing = asyncio.create_task(self._place(number, placed, stop_placing))
        target, to_ready, to_ready_again, _ = await trouble(self, action, list(self.services), self.extra)
        stop_placing.set()
        await placing
        result = RoundResult(number, action, target.data_dir.name, len(placed), to_ready, to_ready_again, 0, 0)
        async with httpx.AsyncClient(base_url=self.node.url, timeout=10) as http:
            not_validated = await self._not_validated(http, placed)
        result.wrong_orders = len(not_validated)
        if not_validated:
            result.problems.append(f"orders not VALIDATED: {not_validated[:10]}")
        differences = await self._reservation_differences()
        this_round = {p: n - self._differences.get(p, 0) for p, n in differences.items()}
        this_round = {p: n for p, n in this_round.items() if n}
        self._differences = differences
        result.reserved_minus_validated = this_round
        result.unapplied_records = sum(abs(d) for d in this_round.values())
        if this_round:
            result.problems.append(f"reserved minus validated units, this round, per product: {this_round}")
        return result

    async def _place(self, number: int, placed: list[str], stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.node.url, timeout=10) as http:
            count = 0
            started = time.monotonic()
            while not stop.is_set():
                product = self.products[count % len(self.products)]
                quantity = 1 + count % 3
                body = {"customer_id": f"r{number}-{count}", "product": product, "quantity": quantity, "price": 1.0}
                try:
                    answer = await http.post("/v1/orders", json=body)
                except httpx.HTTPError:
                    continue
                if answer.status_code in (201, 202):
                    order_id = answer.json()["id"]
                    placed.append(order_id)
                    self.quantities[order_id] = (product, quantity)
                count += 1
                await asyncio.sleep(max(0.0, started + count * WRITE_INTERVAL_SECONDS - time.monotonic()))

    async def _not_validated(self, http: httpx.AsyncClient, placed: list[str]) -> list[str]:
        deadline = time.monotonic() + 60
        pending = list(placed)
        while pending and time.monotonic() < deadline:
            still = []
            for order_id in pending:
                answer = await http.get(f"/v1/orders/{order_id}")
                if answer.status_code != 200 or answer.json()["state"] != "VALIDATED":
                    still.append(f"{order_id}:{answer.status_code}:{answer.json().get('state')}")
            pending = [p.split(":")[0] for p in still]
            if pending:
                await asyncio.sleep(0.5)
        return pending

    async def _reservation_differences(self) -> dict[str, int]:
        """Per product, reserved units (latest changelog value) minus the units of validated orders."""
        expected: dict[str, int] = {}
        for product, quantity in self.quantities.values():
            expected[product] = expected.get(product, 0) + quantity
        topic = f"{self.namespace}.{INVENTORY_CHECKED}"
        deadline = time.monotonic() + 30
        while True:
            reserved = await read_latest(self.bootstrap, topic, PARTITIONS, _reserved)
            differences = {p: reserved.get(p, 0) - n for p, n in expected.items() if reserved.get(p, 0) != n}
            if not differences or time.monotonic() > deadline:
                return differences
            await asyncio.sleep(0.5)


class Settles(Protocol):
    """What `trouble` needs of a torture: a way to wait until the survivors have settled."""

    random: random.Random

    def generation(self, live: list[Stategate]) -> int: ...

    def settle(self, live: list[Stategate], after: int) -> float: ...


async def trouble(
    torture: Settles, action: str, members: list[Stategate], extra: Stategate
) -> tuple[Stategate, float, float, list[Stategate]]:
    """After a second, SIGKILL or SIGTERM one of `members` or let `extra` join; when settled, a second
    later, put things back. Returns the target, the two settle times and the processes then live."""
    live = list(members)
    target = extra if action == "join" else torture.random.choice(members)
    await asyncio.sleep(1.0)  # load before the trouble
    to_ready = await _change(torture, live, target, leave=action != "join", kill=action == "kill")
    await asyncio.sleep(1.0)  # load after it
    to_ready_again = await _change(torture, live, target, leave=action == "join", kill=False)
    return target, to_ready, to_ready_again, live


async def _change(torture: Settles, live: list[Stategate], target: Stategate, leave: bool, kill: bool) -> float:
    before = torture.generation(live)
    if leave and kill:
        target.kill()
    elif leave:
        await asyncio.to_thread(target.stop)
    else:
        target.start()
    if leave:
        live.remove(target)
    else:
        live.append(target)
    return await asyncio.to_thread(torture.settle, live, before)


def _reserved(value: bytes) -> int:
    return int(orjson.loads(value)["reserved"])


async def read_latest(bootstrap: str, topic: str, partitions: int, read: Callable[[bytes], int]) -> dict[str, int]:
    """The latest value of each key of a topic, read to its end, as `read` makes an integer of it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[str, int] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key is not None and record.value is not None:
                        latest[business_key(record.key).decode()] = read(record.value)
        return latest
    finally:
        await consumer.stop()


if __name__ == "__main__":
    main()
