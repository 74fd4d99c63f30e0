"""The worker's restart backoff, shared by ``herald worker``'s own restart
of procrastinate's worker and by the ``--processes`` supervisor."""

from __future__ import annotations

from infra.worker import _Restarts


def test_restarts_double_up_to_the_cap_and_start_over_after_a_long_run() -> None:
    restarts = _Restarts(cap=8)
    assert [restarts.after(ran_for=0.5) for _ in range(5)] == [1, 2, 4, 8, 8]
    # It had been running longer than twice the cap: a new outage.
    assert restarts.after(ran_for=17) == 1
    assert restarts.after(ran_for=0.5) == 2
