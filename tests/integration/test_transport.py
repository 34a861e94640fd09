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
import time
from concurrent.futures import ThreadPoolExecutor

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


def test_large_message_for_sync_recipients_goes_through_the_queue(srv, out):
    # over 1 MiB a message is not held for the sync programs: it streams to
    # a queue file for every recipient and 250 means "queued" (docs/SMTP.md
    # "Large messages"); the programs then run from the queue
    body = "".join(f"line {i} {'x' * 100}\r\n" for i in range(12000))
    code, lines = transaction(srv, ["exit0@sync.example", "q@test.example"],
                              body=MSG + body)
    assert code == 250 and re.match(r"2\.0\.0 ok: queued as \d{16}$",
                                    lines[0]), lines
    srv.wait_log(r"message over 1048576 bytes: streamed to queue file \d+ "
                 r"\(its sync recipients are delivered from the queue\)")
    (d,) = srv.wait_deliveries(1, rcpt="exit0@sync.example")
    assert d["result"] == "delivered" and d.get("mode") != "sync", d
    srv.wait_deliveries(1, rcpt="q@test.example", result="delivered")
    (m,) = files(out, "msg.")
    with open(os.path.join(out, m), "rb") as f:
        data = f.read()
    assert data.endswith((MSG + body).replace("\r\n", "\n").encode())
    srv.wait_queue_empty()


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


# ---------------------------------------------------------------------------
# Sync runs share [pipe] processors with queued deliveries (procslots)

# Counts the instances of itself running at once (under flock) and records
# the count at each start: "COUNT DELIVERY_ID" lines in DIR/starts. Sleeps
# SECS (default 0.4) while it runs.
CONC = r"""
    #!/bin/sh
    cat >/dev/null
    d=$1
    exec 9>>"$d/lock"
    flock 9
    n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
    echo $n > "$d/count"
    echo "$n $DELIVERY_ID" >> "$d/starts"
    flock -u 9
    sleep "${2:-0.4}"
    flock 9
    echo $(( $(cat "$d/count") - 1 )) > "$d/count"
    flock -u 9
"""

# Holds its processor until DIR/release exists (at most 20 s).
HOLD = r"""
    #!/bin/sh
    cat >/dev/null
    : > "$1/held"
    i=0
    while [ ! -e "$1/release" ] && [ $i -lt 200 ]; do
        sleep 0.1; i=$((i+1))
    done
"""


def procs_server(server_factory, processors, extra, router):
    port = free_port()
    config = BASE_CONFIG.replace("processors = 4",
                                 f"processors = {processors}")
    assert f"processors = {processors}" in config
    s = server_factory(config=smtp_config(f"127.0.0.1:{port}", "", extra,
                                          config=config), router=router)
    install_app(s.base, "conc", CONC)
    install_app(s.base, "hold", HOLD)
    s.port = port
    s.start()
    return s


def starts(out):
    try:
        with open(os.path.join(out, "starts")) as f:
            return [int(l.split()[0]) for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def test_sync_runs_count_against_processors(server_factory, out):
    # 6 clients at once, 2 processors: at most 2 programs ever run, the
    # others wait their turn (FIFO), and every client gets its 250
    s = procs_server(server_factory, 2,
                     f"[transport conc]\ndomains = conc.example\n"
                     f"command = conc {out}\nmode = sync\n", "")
    with ThreadPoolExecutor(6) as ex:
        res = list(ex.map(lambda i: transaction(s, [f"c{i}@conc.example"]),
                          range(6)))
    for code, lines in res:
        assert code == 250, lines
    got = starts(out)
    assert len(got) == 6
    assert max(got) == 2, got        # the cap was reached, never passed
    ds = s.wait_deliveries(6, module="TRANSPORT", result="delivered")
    assert any("wait" in d for d in ds), ds   # some waited for a processor


def test_sync_and_queued_share_the_processors(server_factory, out):
    # queued deliveries and sync runs of the same program together: still
    # at most 2 at once, and both sides get through
    s = procs_server(server_factory, 2,
                     f"[transport conc]\ndomains = conc.example\n"
                     f"command = conc {out}\nmode = sync\n",
                     f'<*@test.example> = "conc {out}"@pipe\n')
    rcpts = [f"q{i}@test.example" for i in range(4)] + \
        [f"s{i}@conc.example" for i in range(4)]
    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(lambda r: transaction(s, [r]), rcpts))
    for code, lines in res:
        assert code == 250, lines
    s.wait_deliveries(4, module="PIPE", result="delivered")
    s.wait_queue_empty()
    got = starts(out)
    assert len(got) == 8
    assert max(got) <= 2, got


def test_sync_wait_is_bounded_and_not_in_the_time_limit(server_factory,
                                                          out):
    # processors = 1, held by a queued delivery. A sync run waits for it at
    # most its time limit (then 451 4.3.2, the program never ran); the time
    # limit of a run that did get the processor starts with its program.
    s = procs_server(server_factory, 1,
                     f"[transport bound]\ndomains = bound.example\n"
                     f"command = conc {out}\nmode = sync\ntime-limit = 1s\n"
                     f"[transport tl]\ndomains = tl.example\n"
                     f"command = conc {out} 3\nmode = sync\n"
                     f"time-limit = 4s\n",
                     f'<hold@test.example> = "hold {out}"@pipe\n')
    assert transaction(s, ["hold@test.example"])[0] == 250
    wait_for(lambda: os.path.exists(os.path.join(out, "held")),
             what="the queued program holding the processor")
    with ThreadPoolExecutor(2) as ex:
        bound = ex.submit(transaction, s, ["x@bound.example"])
        tl = ex.submit(transaction, s, ["y@tl.example"])
        code, lines = bound.result(timeout=20)
        assert code == 451 and lines[0].startswith("4.3.2"), lines
        assert "processors busy" in lines[0], lines
        assert starts(out) == []          # that program never ran
        time.sleep(1)                     # y waits ~2 s in all, on purpose
        open(os.path.join(out, "release"), "w").close()
        code, lines = tl.result(timeout=20)
        assert code == 250, lines
    (d,) = s.wait_deliveries(1, rcpt="y@tl.example")
    # waited + ran > its 4 s limit, yet it was not cut: the wait is not in it
    assert float(d["wait"]) + float(d["time"]) > 4.0, d
    assert float(d["time"]) < 4.0, d
    (d,) = s.wait_deliveries(1, rcpt="x@bound.example")
    assert d["result"] == "deferred" and "pid" not in d, d
