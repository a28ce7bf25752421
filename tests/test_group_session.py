"""GroupSession: a node counts itself out of its group once the coordinator stops answering for about a session."""

from __future__ import annotations

from stategate.streams.group_session import GroupSession
from stategate.streams.kafka_settings import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_lost_after_the_session_timeout_less_a_heartbeat_without_an_answer_and_found_again() -> None:
    clock = Clock()
    session = GroupSession(KafkaSettings(session_timeout_seconds=6, heartbeat_interval_seconds=1), clock)
    assert not session.lost  # never joined: nothing to lose
    session.answered()
    clock.now += 4.9
    assert not session.lost
    clock.now += 0.2  # 5.1 s without an answer: the broker evicts at 6
    assert session.lost
    session.answered()
    assert not session.lost
