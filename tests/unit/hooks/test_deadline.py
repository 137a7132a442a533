"""The sync call deadline's watchdog, driven by hand: which socket it may shut down, and when never."""

from __future__ import annotations

import socket

from together_provider.hooks.deadline import CallDeadline, call_deadline


class HandTimer:
    def __init__(self) -> None:
        self.callback = None
        self.cancelled = False

    def __call__(self, seconds, callback):
        self.seconds, self.callback = seconds, callback
        return self.cancel

    def cancel(self) -> None:
        self.cancelled = True


def _is_shut(sock: socket.socket) -> bool:
    try:
        sock.send(b"x")
    except OSError:
        return True
    return False


def test_passing_deadline_shuts_the_watched_socket_down():
    timer = HandTimer()
    a, b = socket.socketpair()
    with a, b:
        deadline = CallDeadline(5, start_timer=timer)
        deadline.watch(a)
        assert timer.seconds == 5 and not deadline.passed
        timer.callback()
        assert deadline.passed and _is_shut(a)


def test_a_socket_watched_after_the_deadline_passed_is_shut_at_once():
    timer = HandTimer()
    a, b = socket.socketpair()
    with a, b:
        deadline = CallDeadline(5, start_timer=timer)
        timer.callback()  # while connecting, before any socket was handed over
        deadline.watch(a)
        assert _is_shut(a)


def test_a_late_watchdog_never_touches_a_socket_after_the_call_finished_or_handed_it_back():
    for end in ("finish", "release"):
        timer = HandTimer()
        a, b = socket.socketpair()
        with a, b:
            deadline = CallDeadline(5, start_timer=timer)
            deadline.watch(a)
            if end == "finish":
                deadline.finish()
                assert timer.cancelled
            else:
                deadline.release(a)  # its connection went back to the pool
            timer.callback()
            assert not _is_shut(a), end


def test_a_closed_socket_is_no_error_for_the_watchdog():
    timer = HandTimer()
    a, b = socket.socketpair()
    b.close()
    deadline = CallDeadline(5, start_timer=timer)
    deadline.watch(a)
    a.close()
    timer.callback()
    assert deadline.passed


def test_the_block_finishes_its_deadline_and_restores_the_outer_one():
    from together_provider.hooks import deadline as module

    outer_timer, inner_timer = HandTimer(), HandTimer()
    with call_deadline(9, start_timer=outer_timer) as outer:
        with call_deadline(1, start_timer=inner_timer) as inner:
            assert module._calls.deadline is inner
        assert inner_timer.cancelled
        assert module._calls.deadline is outer
    assert getattr(module._calls, "deadline", None) is None
