"""[transport NAME] in queue mode, and sync transports for mail that does
not come over SMTP: delivered from the queue by the transport's own
program, with its code.N map, output-file and error-file."""
import os

import pytest

from conftest import (BASE_CONFIG, DAEMON, install_app, message, nobody_dir,
                      prog, run, wait_for)

PROG = r"""
    #!/bin/sh
    # exits with the status in the Subject:, after saving argv and stdin
    out=$1; shift
    body=$(cat)
    printf '%s\0' "$@" > "$out/$DELIVERY_ID.args"
    printf '%s\n' "$body" > "$out/$DELIVERY_ID.msg"
    echo "stdout of $DELIVERY_ID"
    code=$(printf '%s\n' "$body" | sed -n 's/^Subject: exit //p')
    [ -n "$code" ] && echo "stderr says $code" >&2
    exit ${code:-0}
"""


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def config(out, logs, mode="queue"):
    return BASE_CONFIG + f"""
[transport tickets]
domains = tickets.example
command = [STDERR] [RCPT] ticketd {out} -q
mode = {mode}
output-file = {logs}/tickets.out
error-file = {logs}/tickets.err
code.3 = "250 2.0.0 filed"
code.4 = "450 4.2.1 queue busy"
code.5 = "550 5.1.1 no such queue"
"""


def start(server_factory, out, tmpdir755, mode="queue"):
    logs = os.path.join(tmpdir755, "logs")
    os.makedirs(logs, mode=0o755)
    # output-file and error-file are written by the daemon user
    os.chown(logs, DAEMON.pw_uid, DAEMON.pw_gid)
    s = server_factory(config=config(out, logs, mode))
    install_app(s.base, "ticketd", PROG)
    return s.start(), logs


def test_queue_transport_runs_its_command(server_factory, out, tmpdir755):
    s, logs = start(server_factory, out, tmpdir755)
    s.submit(message(to="help@tickets.example", subject="hello"))
    d = s.wait_deliveries(1)[0]
    assert d["module"] == "TRANSPORT" and d["result"] == "delivered"
    (args,) = [f for f in os.listdir(out) if f.endswith(".args")]
    with open(os.path.join(out, args), "rb") as f:
        argv = f.read().split(b"\0")[:-1]
    assert argv == [b"-q", b"-r", b"help@tickets.example"]
    s.wait_queue_empty()
    # stdout goes to output-file
    wait_for(lambda: os.path.exists(os.path.join(logs, "tickets.out")) and
             b"stdout of" in open(os.path.join(logs, "tickets.out"), "rb").read(),
             what="output-file")


@pytest.mark.parametrize("code,result,reason", [
    # mapped: the code.N reply (its text wins)
    ("3", "delivered", "250 2.0.0 filed"),
    ("4", "deferred", "450 4.2.1 queue busy"),
    ("5", "failed", "550 5.1.1 no such queue"),
    # unmapped: the default class and, with [STDERR], stderr as the text
    ("9", "failed", "554 5.3.0 stderr says 9"),
    ("75", "deferred", "451 4.3.0 stderr says 75"),
])
def test_code_map_decides(server_factory, out, tmpdir755, code, result, reason):
    s, logs = start(server_factory, out, tmpdir755)
    s.submit(message(to="a@tickets.example", subject=f"exit {code}"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == result
    assert d["reason"] == reason, d
    # stderr goes to error-file as well
    wait_for(lambda: os.path.exists(os.path.join(logs, "tickets.err")) and
             f"stderr says {code}".encode() in
             open(os.path.join(logs, "tickets.err"), "rb").read(),
             what="error-file")


def test_sync_transport_mail_from_submitted_is_delivered_from_the_queue(
        server_factory, out, tmpdir755):
    s, logs = start(server_factory, out, tmpdir755, mode="sync")
    s.submit(message(to="b@tickets.example", subject="hello"))
    d = s.wait_deliveries(1)[0]
    assert d["module"] == "TRANSPORT" and d["result"] == "delivered"
    s.wait_queue_empty()


def test_route_shows_the_transport_invocation(base, out, tmpdir755):
    logs = os.path.join(tmpdir755, "logs")
    with open(os.path.join(base, "mailpipe.conf"), "w") as f:
        f.write(config(out, logs))
    install_app(base, "ticketd", PROG)
    r = run([prog("mailpipe"), "--base", base, "route", "c@tickets.example"])
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "route: TRANSPORT\n" in text and "transport: tickets (queue mode)\n" in text
    argv = [l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("argv[")]
    assert argv == ["ticketd", out, "-q", "-r", "c@tickets.example"]
