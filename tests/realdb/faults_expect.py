"""What the fault scenarios must measure: the numbers of README.rst's
"Failure behaviour" table.

Shared by ``test_faults_pg.py`` and ``test_faults_mysql.py``: every driver
must give the same counts.  Each ``check_*`` takes the dict a scenario of
``tests/isolated/faults_common.py`` returned.  The test modules register
this module for pytest's assertion rewriting, so a failed check shows the
values compared.
"""

from __future__ import annotations

from tests.isolated.faults_common import DEADLINE_SLACK, RESTART_RECONNECT_DELAY

#: Slack on "the pool learns within one retry interval": scheduling on a
#: shared two-core machine.
RETRY_SLACK = 0.4


def _disconnect(text):
    """Errors that mean "the connection is gone" (the driver's own class)."""
    return text.startswith(("OperationalError", "InterfaceError"))


def check_kill_all_pre_ping(r):
    # 5 idle connections killed, 50 requests from 5 green threads: each
    # killed connection fails its ping once, is discarded and replaced in
    # the same checkout; no caller sees an error.
    assert r["killed"] == 5
    assert r["errors"] == []
    assert r["discarded_dead"] == 5
    assert r["ping_failures"] == 5
    assert r["pings"] == 50
    assert r["connections_opened"] == 5
    assert r["size"] == r["server_count"] == 5


def check_kill_all_no_pre_ping(r):
    assert r["killed"] == 5
    # One request at a time: only the first one gets a dead connection.
    assert len(r["errors_sequential"]) == 1, r["errors_sequential"]
    assert _disconnect(r["errors_sequential"][0])
    seq = r["after_sequential"]
    # It is discarded on return and makes the 4 older idle ones suspect; the
    # next request validates one (dead: discarded, replaced), and from then
    # on the requests reuse the replacement (last in, first out).
    assert seq["discarded_dead"] == 2
    assert seq["ping_failures"] == 1
    assert seq["connections_opened"] == 1
    assert seq["size"] == 4
    # Taking all 5 at once reaches the 3 remaining suspects: each is
    # validated, found dead and replaced, with no error.
    assert r["errors_all_at_once"] == []
    at_once = r["after_all_at_once"]
    assert at_once["discarded_dead"] == 5
    assert at_once["ping_failures"] == 4
    assert at_once["connections_opened"] == 5
    assert at_once["size"] == 5
    assert r["errors_rest"] == []
    # Every dead connection left the pool; 1 error in 50 requests.
    assert r["discarded_dead"] == 5
    assert r["size"] == r["server_count"] == 5


def check_kill_all_burst(r):
    assert r["killed"] == 5
    # 5 callers hold the 5 dead connections at once before any runs a
    # statement: each dead connection is handed out exactly once.
    assert len(r["errors_burst"]) == 5
    assert all(_disconnect(e) for e in r["errors_burst"]), r["errors_burst"]
    burst = r["after_burst"]
    assert burst["discarded_dead"] == 5
    assert burst["size"] == 0
    assert burst["connections_opened"] == 0
    assert r["errors_rest"] == []
    assert r["connections_opened"] == 5
    assert r["size"] == r["server_count"] == 5


def check_kill_get_put(r):
    # get()/put() without a ``with`` block: the pool learns about the dead
    # connection on put() (closed flag, or the rollback failing with a
    # disconnect error) -- same counts as with a ``with`` block.
    assert r["killed"] == 3
    assert len(r["errors"]) == 1, r["errors"]
    assert r["after_sequential"]["discarded_dead"] == 2
    assert r["after_sequential"]["size"] == 2
    assert r["errors_all_at_once"] == []
    assert r["discarded_dead"] == 3
    assert r["discarded_reset_failed"] == 0
    assert r["size"] == r["server_count"] == 3


def check_query_errors(r):
    # A statement timeout (an OperationalError with every driver) and a
    # syntax error reach the caller; the connection survives both.
    assert r["errors"] == ["OperationalError", "ProgrammingError"], r["errors"]
    assert r["sessions_used"] == 1  # the same connection, reused (LIFO)
    assert r["discarded_dead"] == 0
    assert r["connections_opened"] == 0
    assert r["pings"] == 0  # nothing was made suspect
    assert r["errors_all_at_once"] == []
    assert r["size"] == r["server_count"] == 2


def check_blackhole(r, timeout=1.0):
    for case in ("connect", "ping"):
        result = r[case]
        assert result["error"] == "PoolTimeout", result
        assert timeout - 0.01 <= result["elapsed"] <= timeout * (1 + DEADLINE_SLACK), (
            result
        )
    assert r["connect"]["connections_opened"] == 0
    assert r["connect"]["timeouts"] == 1
    # The ping that hung: that connection is discarded, the others stay.
    assert r["ping"]["ping_failures"] == 1
    assert r["ping"]["discarded_dead"] == 1
    assert r["ping"]["size"] == 2
    after = r["after"]
    assert after["errors"] == []
    assert after["size"] == after["server_count"] == 3


def check_reset_blackhole(r, reset_timeout=0.5):
    assert r["was_in_transaction"] is True
    assert r["put_error"] is None
    assert reset_timeout - 0.01 <= r["put_time"] <= reset_timeout + DEADLINE_SLACK, r
    assert r["after_put"]["discarded_reset_failed"] == 1
    assert r["after_put"]["size"] == 0
    assert r["after_put"]["checked_out"] == 0
    assert r["errors_after"] == []
    assert r["size"] == r["server_count"] == 1


#: Slack on the deadline of 200 callers timing out together: the last one's
#: answer waits for the other 199 to be handled in the same process.
CROWD_SLACK = 0.5


def check_outage(r, pool_name, callers=200, size=10, timeout=1.0):
    refused, blackholed = r["refused"], r["blackholed"]
    for case in (refused, blackholed):
        assert case["max_elapsed"] <= timeout * (1 + CROWD_SLACK), case
        assert case["size"] == case["checked_out"] == case["opening"] == 0
        assert case["waiting"] == 0
    # Refused: every caller gets the driver's own connect error at once.
    # Only the callers that found a free slot connected (8 slots were free,
    # 2 held by callers pinging the two cut connections); the others got
    # the last connect error without connecting.
    assert refused["errors"] == {"OperationalError": callers}, refused
    assert refused["accepted"] == 0
    assert refused["connect_calls"] <= size, refused
    assert all(m for m in refused["messages"]), refused["messages"]
    # Black-holed: every caller gets PoolTimeout at its deadline; at most
    # max_size connects are in flight at a time.
    assert blackholed["errors"] == {"PoolTimeout": callers}, blackholed
    assert blackholed["connect_calls"] == blackholed["accepted"]
    assert blackholed["accepted"] <= 2 * size, blackholed
    assert all(pool_name in m for m in blackholed["messages"]), blackholed["messages"]
    # Recovery, with no restart: within one retry interval.
    for case in (refused, blackholed):
        after = case["after"]
        assert after["first_ok"] is not None
        assert after["first_ok"] <= 0.5 + RETRY_SLACK, after
        assert after["errors"] == []
        assert after["size"] == after["server_count"] == size


def check_refill(r, min_size=2, watch=2.0):
    assert r["initial_connects"] == min_size
    assert r["during"]["size"] == 0
    assert r["during"]["discarded_dead"] == min_size
    times = r["attempt_times"]
    # Exponential backoff from 0.05 s up to 0.5 s with jitter: about 7 tries
    # in 2 s, not a busy loop; the gaps grow up to the cap (plus the
    # maintenance loop's own granularity).
    assert 3 <= r["attempts_while_down"] <= 12, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.015 <= gap <= 1.0 for gap in gaps), gaps
    assert gaps[0] < gaps[-1], gaps
    assert r["recovered_after"] is not None
    assert r["recovered_after"] <= 0.5 + RETRY_SLACK, r
    assert r["errors_after"] == []
    assert r["size"] == r["server_count"] == min_size


def check_restart(r, size=5, retry_max=RESTART_RECONNECT_DELAY[1], slack=RETRY_SLACK):
    assert r["errors_before"] == []
    assert r["requests_before"] > 0
    assert r["errors_during"] > 0  # the outage was real
    assert r["reconnected_after"] is not None
    # The pool retries at most one retry interval after its last failure.
    assert r["reconnected_after"] <= retry_max + slack, r
    assert r["requests_after_reconnect"] > 50
    # From the pool's first new connection on: 0 errors.
    assert r["errors_after_reconnect"] == []
    assert r["errors_after_retry_interval"] == []
    assert r["size"] == r["server_count"] == size
    assert r["checked_out"] == r["opening"] == r["waiting"] == 0


def check_hammer(r, size=10):
    assert r["cuts"] >= 5
    assert r["checkouts"] > 200
    assert r["disconnect_errors"] > 0  # the cuts did hit holders
    assert r["double_holds"] == 0
    assert r["dirty_arrivals"] == 0, r["dirty_examples"]
    assert r["other_errors"] == []
    end = r["end"]
    # No slot lost: nothing is checked out, opening or waiting, and every
    # slot can be had.
    assert end["held_left"] == 0
    assert end["checked_out"] == end["opening"] == end["waiting"] == 0
    assert end["free_slots"] == size
    assert end["size"] <= size
    final = r["final"]
    assert final["free_slots"] == size
    assert final["all_slots_taken"] is True
    # The pool's count and the server's count agree.
    assert final["size"] == final["server_count"]
    assert final["checked_out"] == 0


def check_hammer_control(r):
    # The same checks on a pool that does not roll back on return, with no
    # cuts: the check for transactions carried over does fire.
    assert r["dirty_arrivals"] > 0
    assert r["double_holds"] == 0
    assert r["final"]["free_slots"] == 10
