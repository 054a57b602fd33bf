"""The frame budget on its own: every frame counts as sent, rich data aside, framing frames kept."""

from __future__ import annotations

import json

from app.core.budget import FRAME_OVERHEAD_BYTES, FrameBudget


def keep_text(budget: FrameBudget, frame: dict[str, object]) -> str | None:
    data = frame.get("data")
    return budget.keep(
        str(frame["type"]),
        json.dumps(frame),
        data if isinstance(data, str) else None,
        lambda cut: json.dumps({**frame, "data": cut}),
    )


def keep(budget: FrameBudget, frame: dict[str, object]) -> bool:
    return keep_text(budget, frame) is not None


def test_output_counts_as_sent_not_as_raw_bytes() -> None:
    frame = {"type": "stdout", "data": "\ufffd" * 100, "seq": 1}  # 100 characters, 600 bytes as JSON
    budget = FrameBudget(10_000)
    assert keep(budget, frame)
    assert budget.spent == len(json.dumps(frame)) + FRAME_OVERHEAD_BYTES > 600


def test_omitted_images_count_and_end_the_budget() -> None:
    budget = FrameBudget(2_000)
    omitted = {"type": "image", "mime": "image/png", "width": 1, "height": 1, "omitted": "too_large", "seq": 1}
    kept = 0
    while keep(budget, omitted):
        kept += 1
    assert 0 < kept <= 2_000 // (len(json.dumps(omitted)) + FRAME_OVERHEAD_BYTES) and budget.exhausted
    assert not keep(budget, {"type": "stdout", "data": "x", "seq": 9})  # nothing more once spent
    assert keep(budget, {"type": "exit", "reason": "output_limit", "seq": 9})  # the end always is


def test_image_data_is_counted_by_the_rich_budget_instead() -> None:
    budget = FrameBudget(1_000)
    image = {"type": "image", "mime": "image/png", "width": 1, "height": 1, "data": "A" * 50_000, "seq": 1}
    assert keep(budget, image)
    assert budget.spent < 300


def test_the_frame_that_crosses_the_limit_is_cut_to_it() -> None:
    budget = FrameBudget(1_000)
    frame = {"type": "stdout", "data": "\0" * 1_000, "seq": 1}  # 6,000 bytes as sent
    kept = keep_text(budget, frame)
    assert kept is not None and budget.exhausted
    assert 950 < len(kept) <= 1_000 and set(json.loads(kept)["data"]) == {"\0"}
    assert budget.spent == len(kept)
    assert keep_text(budget, frame) is None


def test_typed_input_is_kept_and_not_charged() -> None:
    budget = FrameBudget(1_000)
    assert keep(budget, {"type": "input", "data": "z" * 5_000, "eof": False, "seq": 1})
    assert budget.spent == 0 and not budget.exhausted
