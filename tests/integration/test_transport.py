"""[transport NAME] pipe transports against the real server.

Sections:
  1. Sync transports over SMTP (mode = sync): the program runs during DATA
     and its mapped reply is the SMTP reply (SPEC "Pipe transports",
     "Decisions / Sync transports and durability"; docs/SMTP.md).
  2. Queue-mode transports: see test_transport_queue.py (the lead's; may
     move here later, in its own section).
"""
import os
import re
import smtplib

import pytest

from conftest import (BASE_CONFIG, RawSMTP, free_port, install_app,
                      nobody_dir, prog, queue_leftovers, run, smtp_config,
                      wait_for)

# ---------------------------------------------------------------------------
# 1. Sync transports over SMTP

# Stores stdin and its environment, then exits with the status named by the
# recipient's local part: exit0@..., exit75@..., sleep@... (sleeps).
PROG = r"""
    #!/bin/sh
    cat > "$1/msg.$DELIVERY_ID"
    env | grep -E '^(SENDER|RECIPIENT|ORIGINAL_RECIPIENT|QUEUE_ID|DELIVERY_ID)=' \
        | sort > "$1/env.$DELIVERY_ID"
    lp=${RECIPIENT%%@*}
    case "$lp" in
    sleep) exec sleep 30 ;;
    exit*) exit "${lp#exit}" ;;
    esac
    exit 0
"""

REC = r"""
    #!/bin/sh
    cat > "$1/q.$DELIVERY_ID.tmp" && mv "$1/q.$DELIVERY_ID.tmp" "$1/q.$DELIVERY_ID"
"""

MSG = "From: a@remote.example\r\nTo: x@sync.example\r\nSubject: sync\r\n\r\nbody\r\n"


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


@pytest.fixture
def srv(server_factory, out):
    port = free_port()
    extra = f"""
[transport sy]
domains = sync.example
command = prog {out}
mode = sync
code.3 = "250 2.0.0 mapped fine"
code.10 = "451 4.2.0 mapped try later"
code.11 = "550 5.2.0 mapped refused"

[transport slow]
domains = slow.example
command = prog {out}
mode = sync
time-limit = 1s
"""
    s = server_factory(config=smtp_config(f"127.0.0.1:{port}", "", extra),
                       router=f'<*> = "rec {out}"@pipe\n')
    install_app(s.base, "prog", PROG)
    install_app(s.base, "rec", REC)
    s.port = port
    s.start()
    return s


def files(out, prefix):
    return sorted(f for f in os.listdir(out) if f.startswith(prefix)
                  and not f.endswith(".tmp"))


def transaction(s, rcpts, body=MSG, mail="MAIL FROM:<a@remote.example>"):
    """One transaction; returns the reply to the final dot."""
    c = RawSMTP(s.port, timeout=60)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd(mail)[0] == 250
    for r in rcpts:
        code, lines = c.cmd(f"RCPT TO:<{r}>")
        assert code == 250, (r, code, lines)
    assert c.cmd("DATA")[0] == 354
    c.send(body + ".\r\n")
    res = c.reply()
    assert c.cmd("QUIT")[0] == 221
    c.close()
    return res


def test_sync_success_queues_nothing(srv, out):
    code, lines = transaction(srv, ["exit0@sync.example"])
    assert code == 250 and lines[0].startswith("2.0.0"), lines
    assert "queued" not in lines[0]
    # the program ran before the reply, on the message with Received: on top
    (m,) = files(out, "msg.")
    with open(os.path.join(out, m), "rb") as f:
        data = f.read()
    assert data.startswith(b"Received: from client.example ([127.0.0.1])\n"
                           b"\tby mx.test.example (mailpipe) with ESMTP;\n")
    assert data.endswith(b"\nSubject: sync\n\nbody\n")
    # no queue file at all, ever: nothing was committed
    assert not queue_leftovers(srv.base)
    assert "ENQUEUER low-level: id=" not in srv.log()
    (d,) = srv.wait_deliveries(1, rcpt="exit0@sync.example")
    assert d["module"] == "TRANSPORT" and d["mode"] == "sync"
    assert d["result"] == "delivered" and d["transport"] == "sy"


@pytest.mark.parametrize("rcpt,code,text", [
    ("exit3@sync.example", 250, "2.0.0 mapped fine"),
    ("exit10@sync.example", 451, "4.2.0 mapped try later"),
    ("exit11@sync.example", 550, "5.2.0 mapped refused"),
    ("exit1@sync.example", 554, "5.3.0 pipe transport gave exit status 1"),
    ("exit100@sync.example", 554, "5.3.0 pipe transport gave exit status 100"),
    ("exit71@sync.example", 451, "4.3.0 pipe transport gave exit status 71"),
    ("exit74@sync.example", 451, "4.3.0 pipe transport gave exit status 74"),
    ("exit75@sync.example", 451, "4.3.0 pipe transport gave exit status 75"),
    ("exit79@sync.example", 451, "4.3.0 pipe transport gave exit status 79"),
])
def test_sync_outcome_table(srv, out, rcpt, code, text):
    got, lines = transaction(srv, [rcpt])
    assert got == code, lines
    assert lines[0].startswith(text), lines
    assert len(files(out, "msg.")) == 1          # it ran, once
    assert not queue_leftovers(srv.base)         # and nothing was queued
    assert "ENQUEUER low-level: id=" not in srv.log()


def test_sync_time_limit_answers_451_4_4_2(srv, out):
    code, lines = transaction(srv, ["sleep@slow.example"])
    assert code == 451 and lines[0].startswith("4.4.2"), lines
    assert not queue_leftovers(srv.base)
    (d,) = srv.wait_deliveries(1, rcpt="sleep@slow.example")
    assert d["result"] == "deferred" and d.get("timeout") == "yes"


def test_sync_program_environment(srv, out):
    code, _ = transaction(srv, ["exit0@sync.example"],
                          mail="MAIL FROM:<snd@remote.example>")
    assert code == 250
    (e,) = files(out, "env.")
    with open(os.path.join(out, e)) as f:
        env = dict(l.split("=", 1) for l in f.read().split("\n") if l)
    assert env["SENDER"] == "snd@remote.example"
    assert env["RECIPIENT"] == "exit0@sync.example"
    assert env["ORIGINAL_RECIPIENT"] == "exit0@sync.example"
    assert re.fullmatch(r"[0-9a-f]{32}", env["QUEUE_ID"])
    assert env["DELIVERY_ID"] == env["QUEUE_ID"] + ".0"


def test_sync_orcpt_reaches_the_program(srv, out):
    c = RawSMTP(srv.port, timeout=60)
    c.reply()
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<exit0@sync.example> NOTIFY=FAILURE "
                 "ORCPT=rfc822;first+40old.example")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert c.reply()[0] == 250
    c.close()
    (e,) = files(out, "env.")
    with open(os.path.join(out, e)) as f:
        assert "ORIGINAL_RECIPIENT=first@old.example\n" in f.read()


def test_several_sync_recipients_one_reply(srv, out):
    # every program runs; the one reply is the first permanent failure
    code, lines = transaction(srv, ["exit0@sync.example",
                                    "exit10@sync.example",
                                    "exit11@sync.example"])
    assert code == 550 and lines[0].startswith("5.2.0 mapped refused"), lines
    assert len(files(out, "msg.")) == 3
    assert not queue_leftovers(srv.base)
    code, lines = transaction(srv, ["exit0@sync.example",
                                    "exit10@sync.example"])
    assert code == 451 and lines[0].startswith("4.2.0"), lines


def test_mixed_success_queued_part_durable_first(srv, out):
    code, lines = transaction(srv, ["q@test.example", "exit0@sync.example"])
    assert code == 250, lines
    m = re.search(r"queued as (\d{16})", lines[0])
    assert m, lines
    # the queued recipient is delivered from the queue
    wait_for(lambda: files(out, "q."), what="the queued delivery")
    (d,) = srv.wait_deliveries(1, rcpt="q@test.example")
    assert d["id"] == m.group(1) and d["result"] == "delivered"
    # the queue file was committed before the sync program ran
    log = srv.log()
    assert log.index(f"id={m.group(1)} queued") < \
        log.index("rcpt=exit0@sync.example module=TRANSPORT")
    srv.wait_queue_empty()


def test_mixed_failure_reply_is_the_sync_outcome(srv, out):
    code, lines = transaction(srv, ["q@test.example", "exit11@sync.example"])
    assert code == 550 and lines[0].startswith("5.2.0 mapped refused"), lines
    # the SPEC's decision: the queued part was already durable; it is
    # delivered even though the client was told 550
    wait_for(lambda: files(out, "q."), what="the queued delivery")
    srv.wait_queue_empty()
    assert len(files(out, "msg.")) == 1


def test_sync_transport_with_smtplib_and_unknown_domain_untouched(srv, out):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=60) as c:
        c.ehlo("client.example")
        c.mail("a@remote.example")
        assert c.rcpt("exit0@sync.example")[0] == 250
        code, text = c.data(MSG)
        assert code == 250, text
    assert files(out, "msg.")


# [FILE] and queue[NAME] have no meaning in mode = sync: the config is
# refused where the command is, by --check-config, at start and by route.
@pytest.mark.parametrize("command,why", [
    ("[FILE] prog", "[FILE] needs a queue file: not in mode = sync"),
    ("queue[TICKETS] prog",
     "queue[NAME] orders queued deliveries: not in mode = sync"),
])
def test_sync_refuses_file_tag_and_named_queue(base, command, why):
    conf = os.path.join(base, "mailpipe.conf")
    text = (BASE_CONFIG + "\n[transport sy]\ndomains = sync.example\n"
            f"mode = sync\ncommand = {command}\n")
    with open(conf, "w") as f:
        f.write(text)
    line = text.splitlines().index(f"command = {command}") + 1
    install_app(base, "prog", "#!/bin/sh\ncat >/dev/null\n")
    want = f"{conf}:{line}: [transport sy] command: {why}"
    for args in (["mailpiped", "--base", base, "--check-config"],
                 ["mailpiped", "--base", base],
                 ["mailpipe", "--base", base, "route", "a@sync.example"]):
        r = run([prog(args[0]), *args[1:]], timeout=10)
        assert r.returncode == 78, (args, r.stdout, r.stderr)
        assert want in r.stderr.decode(), (args, r.stderr)
    # the same command in queue mode is a valid transport
    with open(conf, "w") as f:
        f.write(text.replace("mode = sync", "mode = queue"))
    r = run([prog("mailpiped"), "--base", base, "--check-config"])
    assert r.returncode == 0, r.stderr
