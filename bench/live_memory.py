"""Where the memory of an open SSE stream goes: `python -m bench.live_memory [--streams 2000] [--kind ws]`.

With `--kind ws` the client opens WebSockets instead, each subscribed to one order.

Runs one gateway node in this process (uvicorn on uvloop, as `stategate
node` does) against a broker of its own, warms the stream path up with a
few hundred streams, then starts tracemalloc, has a client in another
process (so that its objects are not traced) open `--streams` SSE streams
on orders that exist and do not change, and compares two snapshots: the
bytes each open stream holds, by file and by line, next to the RSS growth.
Prints a report; saves nothing. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from stategate.app.broker import free_port
from stategate.app.config import Settings
from stategate.app.event_loop import run_loop
from stategate.app.node_process import create_server
from stategate.views.api import create_api

from .harness import broker, rss_mb
from .live import SseStream, order_version, raise_open_files

KIND = "sse"
"""What the client opens: SSE streams or WebSockets (`--kind`)."""


async def client(url: str, ids: list[str], kind: str) -> None:
    """The client side (a process of its own): open a stream per id, print `open`, hold them until stdin closes."""
    opener = _open if kind == "sse" else _open_socket
    streams: list[Any] = []
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        streams.extend(await asyncio.gather(*(opener(url, order_id) for order_id in batch)))
    print("open", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if kind == "sse":
        for stream in streams:
            stream.close()
    # WebSockets: the process exits and the node sees the connections drop.


async def _open_socket(url: str, order_id: str) -> Any:
    from websockets.asyncio.client import connect

    socket = await connect(url.replace("http://", "ws://") + "/v1/ws", ping_interval=None, compression=None)
    assert orjson.loads(await socket.recv())["type"] == "hello"
    await socket.send(orjson.dumps({"op": "subscribe", "orders": [order_id]}).decode())
    assert orjson.loads(await socket.recv())["order"]["id"] == order_id
    return socket


async def _open(url: str, order_id: str) -> SseStream:
    stream = await SseStream.open(url, f"/v1/orders/{order_id}/events")
    await stream.event()
    return stream


def hold(url: str, ids: list[str], work: Path) -> subprocess.Popen[str]:
    """A client process holding a stream on each order; returns once they are all open."""
    ids_file = work / f"ids-{uuid.uuid4().hex[:6]}"
    ids_file.write_text("\n".join(ids))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.live_memory", "--client", url, str(ids_file), "--kind", KIND],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "open":
        raise RuntimeError(f"the client did not open its streams: {line!r}")
    return process


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(30)


async def node_under_trace(bootstrap: str, work: Path, count: int, warm_up: int, top: int) -> None:
    namespace = f"bench-mem-{uuid.uuid4().hex[:6]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings.from_env(
        broker=bootstrap,
        namespace=namespace,
        port=port,
        host="127.0.0.1",
        node_id="mem",
        data_dir=work / "node",
        max_streams=count + warm_up + 1000,
        log_level="WARNING",
    )
    server = create_server(settings, create_api)
    serving = asyncio.get_running_loop().create_task(server.serve())
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(600):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        ids = [f"live-{uuid.uuid4().hex[:16]}" for _ in range(count + warm_up)]
        acks = [await producer.send(f"{namespace}.orders", order_version(i, 1), key=i.encode()) for i in ids]
        await asyncio.gather(*acks)
        await producer.stop()
        await http.get(f"/v1/orders/{ids[-1]}", params={"wait_for": "CREATED"})
        loop = asyncio.get_running_loop()
        # Warm-up: first-time allocations (caches, the peer client, buffers) do not count.
        release(await loop.run_in_executor(None, hold, url, ids[:warm_up], work))
        await asyncio.sleep(1.0)
        gc.collect()
        rss_before = rss_mb(os.getpid())
        tracemalloc.start(12)
        before = tracemalloc.take_snapshot()
        process = await loop.run_in_executor(None, hold, url, ids[warm_up:], work)
        await asyncio.sleep(1.0)
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss_after = rss_mb(os.getpid())
        traced_total = sum(s.size_diff for s in after.compare_to(before, "filename"))
        gauge = next(
            line for line in (await http.get("/metrics")).text.splitlines() if line.startswith("stategate_live_streams")
        )
        release(process)
    tracemalloc.stop()
    server.should_exit = True
    await serving

    print(f"{count} streams open ({gauge})")
    print(
        f"RSS +{rss_after - rss_before:.1f} MiB ({(rss_after - rss_before) * 1024 / count:.2f} KiB per stream;"
        " includes tracemalloc's own tables)"
    )
    print(f"traced Python allocations +{traced_total / count / 1024:.2f} KiB per stream\n")
    print("by file, bytes per stream (count of blocks per stream):")
    for stat in after.compare_to(before, "filename")[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / count:8.0f} B  {stat.count_diff / count:6.2f}  {_short(frame.filename)}")
    print("\nby line, bytes per stream:")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(
            f"  {stat.size_diff / count:8.0f} B  {stat.count_diff / count:6.2f}"
            f"  {_short(frame.filename)}:{frame.lineno}"
        )
    print("\nby traceback (the first frame in the project or uvicorn/starlette/fastapi), bytes per stream:")
    grouped: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        grouped[_origin(stat.traceback)] = grouped.get(_origin(stat.traceback), 0) + stat.size_diff
    for origin, size in sorted(grouped.items(), key=lambda item: -item[1])[:top]:
        print(f"  {size / count:8.0f} B  {origin}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "python3.11/", "livebench/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _origin(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame that is our code or the HTTP stack's, as file:line."""
    for frame in reversed(traceback):  # tracemalloc lists the oldest frame first
        name = frame.filename
        if any(part in name for part in ("/app/", "/views/", "/streams/", "uvicorn/", "starlette/", "fastapi/")):
            return f"{_short(name)}:{frame.lineno}"
    frame = traceback[0]
    return f"{_short(frame.filename)}:{frame.lineno}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2_000)
    parser.add_argument("--warm-up", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--kind", choices=("sse", "ws"), default="sse")
    parser.add_argument("--client", nargs=2, metavar=("URL", "IDS_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global KIND
    KIND = args.kind
    if args.client:
        url, ids_file = args.client
        asyncio.run(client(url, Path(ids_file).read_text().split(), args.kind))
        return
    raise_open_files(args.streams + args.warm_up + 1000)
    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp, broker(Path(tmp)) as bootstrap:
        run_loop(node_under_trace(bootstrap, Path(tmp), args.streams, args.warm_up, args.top))


if __name__ == "__main__":
    main()
