"""Build slots: never more holders than slots, the highest priority first, re-entrant."""

import threading
import time

from kubemips.slots import Slots


def test_at_most_count_hold_and_a_freed_slot_goes_to_the_highest_priority() -> None:
    slots = Slots(1)
    order: list[str] = []
    holding = 0
    most = 0
    lock = threading.Lock()
    slots.acquire(0.0)  # held while the others line up

    def work(name: str, priority: float) -> None:
        nonlocal holding, most
        slots.acquire(priority)
        with lock:
            holding += 1
            most = max(most, holding)
            order.append(name)
        time.sleep(0.02)
        with lock:
            holding -= 1
        slots.release()

    threads = [threading.Thread(target=work, args=(n, p)) for n, p in (("light", 1.0), ("heavy", 9.0), ("mid", 4.0))]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # all three wait, in the order light, heavy, mid
    slots.release()
    for thread in threads:
        thread.join(5)
    assert order == ["heavy", "mid", "light"]
    assert most == 1


def test_equal_priorities_go_in_the_order_given_not_the_order_of_arrival() -> None:
    slots = Slots(1)
    order: list[int] = []
    slots.acquire(0.0)

    def work(n: int) -> None:
        slots.acquire(1.0, n)
        order.append(n)
        slots.release()

    threads = [threading.Thread(target=work, args=(n,)) for n in (3, 1, 2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    slots.release()
    for thread in threads:
        thread.join(5)
    assert order == [1, 2, 3]


def test_two_slots_run_two_at_once() -> None:
    slots = Slots(2)
    started = threading.Barrier(2, timeout=5)

    def work() -> None:
        slots.acquire(1.0)
        started.wait()  # both must hold at the same time, or this times out
        slots.release()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not started.broken


def test_a_holder_acquires_again_without_waiting_and_releases_once_per_acquire() -> None:
    slots = Slots(1)
    assert slots.acquire(0.0) >= 0.0
    assert slots.acquire(0.0) == 0.0  # its smoke run, inside its build
    slots.release()
    got = threading.Event()

    def other() -> None:
        slots.acquire(0.0)
        got.set()
        slots.release()

    thread = threading.Thread(target=other)
    thread.start()
    assert not got.wait(0.1)  # still held by the outer acquire
    slots.release()
    assert got.wait(5)
    thread.join(5)
