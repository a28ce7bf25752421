"""The order view's group plan: balanced, sticky, standby-aware, and the map every member gets."""

from __future__ import annotations

import itertools

import pytest

from stategate.streams.view_assignor import Claim, ClusterMap, Share, plan


def claims(*urls: str, **held: tuple[set[int], set[int]]) -> dict[str, Claim]:
    """Members m0, m1, ... with their URLs; `held` gives a member's (active, standby) partitions."""
    result = {}
    for i, url in enumerate(urls):
        active, standby = held.get(f"m{i}", (set(), set()))
        result[f"m{i}"] = Claim(url, frozenset(active), frozenset(standby))
    return result


@pytest.mark.parametrize(("members", "partitions"), [(1, 12), (2, 12), (3, 12), (4, 12), (5, 12), (6, 12), (3, 4)])
def test_every_partition_has_one_owner_and_shares_differ_by_at_most_one(members: int, partitions: int) -> None:
    shares = plan(claims(*(f"http://n{i}" for i in range(members))), partitions, standby_replicas=1)
    owned = sorted(itertools.chain.from_iterable(share.active for share in shares.values()))
    assert owned == list(range(partitions))
    sizes = [len(share.active) for share in shares.values()]
    assert max(sizes) - min(sizes) <= 1


def test_standby_copies_live_on_another_member() -> None:
    shares = plan(claims("http://a", "http://b", "http://c"), 12, standby_replicas=1)
    for share in shares.values():
        assert not set(share.active) & set(share.standby)
    standby = sorted(itertools.chain.from_iterable(share.standby for share in shares.values()))
    assert standby == list(range(12))  # one copy of each partition


def test_a_lone_member_has_no_standby() -> None:
    shares = plan(claims("http://a"), 4, standby_replicas=1)
    assert shares["m0"].active == (0, 1, 2, 3)
    assert shares["m0"].standby == ()


def test_partitions_stay_with_their_owners_when_a_member_joins() -> None:
    before: dict[str, tuple[set[int], set[int]]] = {
        "m0": ({0, 1, 2, 3, 4, 5}, set()),
        "m1": ({6, 7, 8, 9, 10, 11}, set()),
    }
    shares = plan(claims("http://a", "http://b", "http://c", **before), 12, standby_replicas=0)
    assert set(shares["m0"].active) <= before["m0"][0]
    assert set(shares["m1"].active) <= before["m1"][0]
    assert len(shares["m2"].active) == 4


def test_a_survivor_takes_over_the_partitions_it_has_standby_copies_of() -> None:
    # A member that owned 2 and 3 is gone; m0 has copies of both, m1 of neither.
    held = {"m0": ({0, 1}, {2, 3}), "m1": ({4, 5}, set())}
    shares = plan(claims("http://a", "http://c", **held), 6, standby_replicas=1)
    assert set(shares["m0"].active) == {0, 1, 2}  # its copy of 2; 3 would exceed its share
    assert set(shares["m1"].active) == {3, 4, 5}


def test_the_cluster_map_names_the_owner_of_each_partition() -> None:
    cluster = ClusterMap(4, {"http://a": (0, 1), "http://b": (2, 3)}, {"http://a": (2, 3), "http://b": (0, 1)})
    decoded, mine = ClusterMap.decode(cluster.encode([2, 3]))
    assert decoded == cluster
    assert mine == {2, 3}
    assert [decoded.owner(p) for p in range(4)] == ["http://a", "http://a", "http://b", "http://b"]
    assert decoded.owner(7) is None


def test_a_claim_survives_the_wire() -> None:
    claim = Claim("http://a", frozenset({1, 2}), frozenset({3}))
    assert Claim.decode(claim.encode()) == claim


def test_of_two_members_with_one_url_only_the_newer_process_gets_partitions() -> None:
    # A node was SIGKILLed and restarted before the group noticed: its old member is a zombie.
    members = {
        "old": Claim("http://a", frozenset({0, 1}), started=100.0),
        "new": Claim("http://a", started=200.0),
        "other": Claim("http://b", frozenset({2, 3}), started=150.0),
    }
    shares = plan(members, 4, standby_replicas=1)
    assert shares["old"] == Share()
    assert sorted(shares["new"].active + shares["other"].active) == [0, 1, 2, 3]
    assert len(shares["new"].active) == 2
