"""Place an order with nothing but a Kafka producer: no gateway, no SDK.

    python examples/plain_producer.py --broker 127.0.0.1:9092 \\
        '{"id": "plain-1", "customer_id": "c9", "product": "JUMPERS", "quantity": 0, "price": 9.5}'

Then watch it: curl -L 'localhost:8080/v1/orders/plain-1?wait_for=VALIDATED'
(quantity 0 fails ORDER_DETAILS_CHECK, which the HTTP API would refuse with 422).
The record's key is the order id as UTF-8; the value is the order's JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiokafka import AIOKafkaProducer


async def produce(broker: str, topic: str, order: dict[str, object]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=str(order["id"]).encode(), value=json.dumps(order).encode())
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("order", help="the order as JSON; it needs an id")
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="orders")
    args = parser.parse_args()
    asyncio.run(produce(args.broker, args.topic, json.loads(args.order)))
    print("sent")


if __name__ == "__main__":
    main()
