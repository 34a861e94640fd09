"""Retry state on disk (issue 13 point 1): each deferral's attempt number
and next attempt time are appended to the queue file's journal, so a
restart (even after kill -9) keeps the schedule instead of retrying at
once; past max-lifetime a recipient fails with 4.4.7 quoting the last
error. Against the real server and a real deferring program."""
import os
import re
import time

import pytest

from conftest import BASE_CONFIG, install_app, message, nobody_dir, wait_for

# records each attempt's time, then defers (EX_TEMPFAIL)
DEFER = r"""
    #!/bin/sh
    cat > /dev/null
    date +%s.%N >> "$1/attempts"
    echo "mailbox busy, try later" >&2
    exit 75
"""


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def attempts(out):
    try:
        with open(os.path.join(out, "attempts")) as f:
            return [float(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def journal(s):
    """The journal lines of the one queue file (after the message)."""
    files = s.queue_files()
    if len(files) != 1:
        return []
    with open(files[0], "rb") as f:
        data = f.read()
    return re.findall(rb"^attempt \d+ .*$", data.split(b"\n\n", 1)[1], re.M)


def server(server_factory, out, queue):
    cfg = BASE_CONFIG.replace("[queue]\nretry = 1s", "[queue]\n" + queue)
    assert queue in cfg
    s = server_factory(config=cfg, router=f'<*> = "defer {out}"@pipe\n')
    install_app(s.base, "defer", DEFER)
    return s


def test_a_deferral_is_recorded_in_the_queue_file(server_factory, out):
    s = server(server_factory, out, "retry = 1h").start()
    s.submit(message(to="busy@test.example"))
    lines = wait_for(lambda: journal(s), what="a journal record")
    m = re.match(rb"attempt 0 (\d+) 1 deferred (\d+) pipe 451 (4\.\d+\.\d+) "
                 rb"(.*)$", lines[0])
    assert m, lines[0]
    assert int(m.group(2)) - int(m.group(1)) == 3600
    assert b"mailbox busy, try later" in m.group(4)
    s.stop()


def test_the_retry_schedule_survives_kill_9(server_factory, out):
    s = server(server_factory, out, "retry = 4s, 1h").start()
    s.submit(message(to="busy@test.example"))
    wait_for(lambda: journal(s), what="the first deferral recorded")
    first = attempts(out)
    assert len(first) == 1
    s.kill()
    s.start()
    # none forgotten: the second attempt comes after the restart ...
    wait_for(lambda: len(attempts(out)) == 2, timeout=15,
             what="the second attempt")
    second = attempts(out)[1]
    # ... and not early: the recorded next time is whole seconds after the
    # attempt ended, so it is at least 3 s after the program's first run
    # (a restart that forgot the schedule retries within a second)
    assert second - first[0] >= 3.0, (first, second)
    s.wait_log(r"result=deferred .*attempt=2", since_start=True)
    # the attempt count went on: the next interval is the second one (1h)
    lines = wait_for(lambda: (lambda j: j if len(j) == 2 else None)(journal(s)),
                     what="the second deferral recorded")
    m = re.match(rb"attempt 0 (\d+) 2 deferred (\d+) ", lines[1])
    assert m and int(m.group(2)) - int(m.group(1)) == 3600, lines[1]
    s.stop()


def test_expiry_fails_with_4_4_7_and_the_last_error(server_factory, out):
    s = server(server_factory, out, "retry = 1s\nmax-lifetime = 3s").start()
    s.submit(message(to="busy@test.example"))
    line = s.wait_log(r"result=failed .*delivery time expired", timeout=20)
    s.wait_queue_empty()
    log = s.log()
    failed = [l for l in log.splitlines()
              if "result=failed" in l and "busy@test.example" in l]
    assert len(failed) == 1, failed
    assert "4.4.7" in failed[0]
    assert "mailbox busy, try later" in failed[0]
    assert len(attempts(out)) >= 2
    assert line
    s.stop()
