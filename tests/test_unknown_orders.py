"""A long-poll whose order never came: 404 only when the order surely does not exist, else 503 + Retry-After."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from stategate.views.problems import unknown_after_wait


def node(erased: bool, read_to_end: bool) -> Any:
    async def surely_absent(order_id: str) -> bool:
        return read_to_end

    return SimpleNamespace(
        view=SimpleNamespace(is_erased=lambda order_id: erased),
        orders=SimpleNamespace(surely_absent=surely_absent),
        settings=SimpleNamespace(retry_after_seconds=1),
    )


async def test_an_order_not_read_yet_is_503_with_retry_after_never_404() -> None:
    problem = await unknown_after_wait(node(erased=False, read_to_end=False), "o-1")
    assert problem.status == 503 and problem.headers == {"Retry-After": "1"}


async def test_an_order_surely_absent_is_404_and_an_erased_one_says_so() -> None:
    assert (await unknown_after_wait(node(erased=False, read_to_end=True), "o-1")).status == 404
    erased = await unknown_after_wait(node(erased=True, read_to_end=False), "o-1")
    assert erased.status == 404 and erased.extra == {"erased": True}
