"""Benchmark the actors library against a bare anyio memory-object stream, in one run.

Prints, for each anyio backend:
* cast throughput (messages/s) of one actor, next to a bare producer/consumer pair on an anyio
  memory object stream with the same buffer size, and the ratio (target: >= 0.5);
* call round-trip time (median and p99), next to a bare request/reply over two anyio memory
  object streams (a request stream and a reply stream, one server task), and the ratio;
* crash-to-restart latency: from a child raising to its restarted incarnation handling a
  message, with no backoff (target: median < 1 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio

from actors import Actor, Backoff, ChildSpec, MailboxPolicy, Strategy, open_actor, open_supervisor

CAPACITY = 1000


class Sink(Actor[int]):
    mailbox_policy = MailboxPolicy(capacity=CAPACITY)

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: int) -> int:
        self.count += 1
        return self.count


async def bare_stream(n: int) -> float:
    send, receive = anyio.create_memory_object_stream[int](CAPACITY)
    received = 0

    async def consumer() -> None:
        nonlocal received
        async with receive:
            async for _ in receive:
                received += 1

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        async with send:
            for i in range(n):
                await send.send(i)
    elapsed = time.perf_counter() - start
    assert received == n
    return n / elapsed


async def actor_cast(n: int) -> float:
    sink = Sink()
    async with open_actor(sink) as address:
        start = time.perf_counter()
        for i in range(n):
            await address.cast(i)
        await address.call(-1)  # the reply comes after every cast was handled
        elapsed = time.perf_counter() - start
    assert sink.count == n + 1
    return n / elapsed


async def bare_round_trip(n: int) -> list[float]:
    """The reference for a call: a request stream and a reply stream to one server task."""
    request_send, request_receive = anyio.create_memory_object_stream[int](CAPACITY)
    reply_send, reply_receive = anyio.create_memory_object_stream[int](CAPACITY)
    samples = []

    async def server() -> None:
        async with request_receive, reply_send:
            async for request in request_receive:
                await reply_send.send(request)

    async with anyio.create_task_group() as tg:
        tg.start_soon(server)
        async with request_send, reply_receive:
            for i in range(n):
                start = time.perf_counter()
                await request_send.send(i)
                await reply_receive.receive()
                samples.append(time.perf_counter() - start)
    return samples


async def actor_call(n: int) -> list[float]:
    samples = []
    async with open_actor(Sink()) as address:
        for i in range(n):
            start = time.perf_counter()
            await address.call(i)
            samples.append(time.perf_counter() - start)
    return samples


class Crashy(Actor[Any]):
    """Crashes on "crash", recording when; records when the next incarnation handles "ping"."""

    def __init__(self, marks: dict[str, Any]) -> None:
        self.marks = marks

    async def on_start(self) -> None:
        self.marks["up"].set()

    async def handle(self, message: Any) -> None:
        if message == "crash":
            self.marks["crashed_at"] = time.perf_counter()
            raise RuntimeError("benchmark crash")
        self.marks["samples"].append(time.perf_counter() - self.marks["crashed_at"])


async def restart_latency(n: int) -> list[float]:
    marks: dict[str, Any] = {"samples": [], "up": anyio.Event()}
    spec = ChildSpec("crashy", start=lambda: Crashy(marks))
    async with open_supervisor(
        [spec], strategy=Strategy.ONE_FOR_ONE, intensity=n + 1, period=1.0, backoff=Backoff.none()
    ) as sup:
        (child,) = await sup.which_children()
        for _ in range(n):
            await marks["up"].wait()
            marks["up"] = anyio.Event()
            await child.address.cast("crash")
            await marks["up"].wait()  # the restarted incarnation is accepting messages
            await child.address.call("ping")
    return marks["samples"]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int) -> None:
    await bare_stream(n // 10)  # warm-up
    await actor_cast(n // 10)
    bare = statistics.median([await bare_stream(n) for _ in range(3)])
    cast = statistics.median([await actor_cast(n) for _ in range(3)])
    await bare_round_trip(n // 100)  # warm-up
    await actor_call(n // 100)
    bare_calls = await bare_round_trip(n // 10)
    calls = await actor_call(n // 10)
    restarts = await restart_latency(1000)
    ratio = cast / bare
    call_ratio = statistics.median(calls) / statistics.median(bare_calls)
    print(f"  bare memory-object stream : {bare:>12,.0f} msg/s")
    print(f"  actor cast                : {cast:>12,.0f} msg/s   ratio {ratio:.2f} (target >= 0.5)")
    print(
        f"  bare request/reply streams: median {statistics.median(bare_calls) * 1e6:7.1f} us"
        f"   p99 {pct(bare_calls, 0.99) * 1e6:7.1f} us"
    )
    print(
        f"  actor call round trip     : median {statistics.median(calls) * 1e6:7.1f} us"
        f"   p99 {pct(calls, 0.99) * 1e6:7.1f} us   ratio {call_ratio:.2f}x the bare round trip"
    )
    print(
        f"  crash -> restarted handles: median {statistics.median(restarts) * 1e6:7.1f} us"
        f"   p99 {pct(restarts, 0.99) * 1e6:7.1f} us   (target median < 1000 us)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages (smoke run)")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    for backend in ("asyncio", "trio"):
        print(f"backend {backend} ({n:,} messages):")
        anyio.run(run, n, backend=backend)


if __name__ == "__main__":
    main()
