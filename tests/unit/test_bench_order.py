"""The benchmark's round order: balanced for what runs just before each side."""

from __future__ import annotations

import collections
import itertools

import pytest

from tests.bench.common import balanced_order, design_period


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_every_side_goes_first_and_follows_every_other_equally_often(n: int) -> None:
    sides = [chr(ord("a") + k) for k in range(n)]
    period = design_period(n)
    rounds = [balanced_order(sides, i) for i in range(period)]
    assert all(sorted(r) == sides for r in rounds)
    firsts = collections.Counter(r[0] for r in rounds)
    assert set(firsts) == set(sides) and len(set(firsts.values())) == 1, firsts
    pairs = collections.Counter((a, b) for r in rounds for a, b in itertools.pairwise(r))
    assert set(pairs) == set(itertools.permutations(sides, 2)), pairs
    assert len(set(pairs.values())) == 1, pairs


def test_the_design_repeats_after_one_period() -> None:
    sides = ["ws", "http", "epicbox", "sdk"]
    assert balanced_order(sides, 4) == balanced_order(sides, 0)
    assert balanced_order(sides, 0) == ["ws", "http", "sdk", "epicbox"]
    five = ["ws", "http", "epicbox", "attach", "sdk"]
    assert balanced_order(five, 10) == balanced_order(five, 0)
    assert balanced_order(five, 5) == balanced_order(five, 0)[::-1]
    assert design_period(4) == 4 and design_period(5) == 10


def test_one_side_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two"):
        balanced_order(["a"], 0)
