"""The benchmark's round order: balanced for what runs just before each side."""

from __future__ import annotations

import itertools

import pytest

from tests.bench.common import balanced_order


@pytest.mark.parametrize("n", [2, 4, 6])
def test_every_side_goes_first_once_and_follows_every_other_once(n: int) -> None:
    sides = [chr(ord("a") + k) for k in range(n)]
    rounds = [balanced_order(sides, i) for i in range(n)]
    assert all(sorted(r) == sides for r in rounds)
    assert sorted(r[0] for r in rounds) == sides
    pairs = [(a, b) for r in rounds for a, b in itertools.pairwise(r)]
    assert sorted(pairs) == sorted(itertools.permutations(sides, 2))


def test_the_design_repeats_after_one_square() -> None:
    sides = ["ws", "http", "epicbox", "sdk"]
    assert balanced_order(sides, 4) == balanced_order(sides, 0)
    assert balanced_order(sides, 0) == ["ws", "http", "sdk", "epicbox"]


def test_an_odd_number_of_sides_is_refused() -> None:
    with pytest.raises(ValueError, match="even number"):
        balanced_order(["a", "b", "c"], 0)
