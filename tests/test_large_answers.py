"""AnswerBudget on its own event loop: reads of large answers wait for room, then 503; first reads go one at a time.

The processes' side (slow readers that never read, memory measured) is in test_memory_bounds.py.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from labbridge.core.errors import TooManyLargeAnswers
from labbridge.frontend import large_answers
from labbridge.frontend.large_answers import LARGE, AnswerBudget
from labbridge.frontend.memory_trim import can_trim

MIB = 1024 * 1024
FRAME = ("camera", "frame", ("npy",))


def budget() -> AnswerBudget:
    return AnswerBudget(total=32 * MIB, per_client=16 * MIB)


def test_a_read_past_the_total_waits_for_an_answer_to_end_and_then_goes_on() -> None:
    async def scenario() -> tuple[int, int]:
        answers = budget()
        for client in ("a", "b", "c", "d"):
            await answers.reserve(client, 8 * MIB)  # 32 MiB: full
        waiting = asyncio.create_task(answers.reserve("e", 8 * MIB))
        await asyncio.sleep(0)
        assert not waiting.done()
        answers.release("a", 8 * MIB)
        await asyncio.wait_for(waiting, 0.5)
        return answers.used, answers.refused

    assert asyncio.run(scenario()) == (32 * MIB, 0)


def test_a_read_that_finds_no_room_within_a_second_gets_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_answers, "WAIT", 0.05)

    async def scenario() -> AnswerBudget:
        answers = budget()
        await answers.reserve("a", 16 * MIB)
        with pytest.raises(TooManyLargeAnswers) as refused:
            await answers.reserve("a", 8 * MIB)  # over its own share
        assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "1"}
        assert "16 MiB per client" in refused.value.detail
        return answers

    answers = asyncio.run(scenario())
    assert (answers.used, answers.by_client, answers.refused) == (16 * MIB, {"a": 16 * MIB}, 1)


def test_one_answer_larger_than_the_bounds_goes_through_when_nothing_else_is_held() -> None:
    async def scenario() -> int:
        answers = budget()
        await answers.reserve("a", 40 * MIB)  # over both bounds, but alone
        return answers.used

    assert asyncio.run(scenario()) == 40 * MIB


def test_first_reads_of_an_attribute_wait_for_the_first_answer_and_then_reserve_its_size() -> None:
    async def scenario() -> list[int]:
        answers = budget()
        assert answers.expected(FRAME) is None
        assert await answers.learn(FRAME) == 0  # this read finds out
        others = [asyncio.create_task(answers.learn(FRAME)) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in others)  # no second read goes out while the size is unknown
        assert answers.settle("a", FRAME, 0, 8 * MIB) == 8 * MIB
        return list(await asyncio.gather(*others))

    assert asyncio.run(scenario()) == [8 * MIB] * 3


def test_a_first_read_that_fails_lets_the_next_one_find_out() -> None:
    async def scenario() -> int | None:
        answers = budget()
        assert await answers.learn(FRAME) == 0
        second = asyncio.create_task(answers.learn(FRAME))
        await asyncio.sleep(0)
        answers.abandon("a", FRAME, 0)  # an error, a timeout
        assert await asyncio.wait_for(second, 0.5) == 0  # now it is the one out
        answers.settle("b", FRAME, 0, 100)
        return answers.expected(FRAME)

    assert asyncio.run(scenario()) == 0  # small: nothing to reserve from now on


def test_an_unexpectedly_large_answer_that_does_not_fit_is_refused_at_once() -> None:
    async def scenario() -> AnswerBudget:
        answers = budget()
        await answers.reserve("a", 30 * MIB)
        with pytest.raises(TooManyLargeAnswers):
            answers.settle("b", FRAME, 0, 8 * MIB)
        assert answers.expected(FRAME) == 8 * MIB  # reserved before the next read goes out
        assert answers.settle("b", ("camera", "frame_count", ("json",)), 0, LARGE - 1) == 0  # small: not counted
        return answers

    answers = asyncio.run(scenario())
    assert (answers.used, answers.refused) == (30 * MIB, 1)


def test_sizes_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_answers, "KNOWN_SIZES", 3)

    async def scenario() -> AnswerBudget:
        answers = budget()
        for k in range(5):
            answers.settle("a", ("m", f"a{k}", ("json",)), 0, 10)
        return answers

    answers = asyncio.run(scenario())
    assert [answers.expected(("m", f"a{k}", ("json",))) for k in range(5)] == [None, None, 0, 0, 0]


def test_a_read_that_waited_its_patience_for_the_first_answer_goes_ahead() -> None:
    async def scenario() -> int:
        answers = AnswerBudget(total=32 * MIB, per_client=16 * MIB, patience=0.05)
        assert await answers.learn(FRAME) == 0  # out, and slow (an instrument that times out)
        second = await asyncio.wait_for(answers.learn(FRAME), 1)  # not held up longer than its patience
        answers.settle("a", FRAME, 0, 8 * MIB)
        answers.settle("b", FRAME, second, 8 * MIB)
        return answers.used

    assert asyncio.run(scenario()) == 16 * MIB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_can_be_given_back_on_linux() -> None:
    assert can_trim()
