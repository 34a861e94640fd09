"""The SMTP listener against the real server: every extension, each limit,
pipelining, STARTTLS (with a certificate made at test time), SMTP smuggling,
relay denial, and what a dropped connection leaves behind. docs/SMTP.md
describes the behaviour tested here."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (RawSMTP, free_port, install_app, nobody_dir,
                      queue_leftovers, smtp_config, wait_for)

# writes its stdin to OUT/msg.<DELIVERY_ID>
REC = r"""
    #!/bin/sh
    cat > "$1/msg.$DELIVERY_ID.tmp" && mv "$1/msg.$DELIVERY_ID.tmp" "$1/msg.$DELIVERY_ID"
"""

# blocks until OUT/go exists, then records the delivery
GATE = r"""
    #!/bin/sh
    cat > /dev/null
    touch "$1/started.$DELIVERY_ID"
    while [ ! -e "$1/go" ]; do sleep 0.02; done
    echo "$ORIGINAL_RECIPIENT" >> "$1/done"
"""

ESC = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def start(server_factory, out, smtp="", extra="", router=None, listen=None,
          port=None):
    """A server with an SMTP listener on a free loopback port."""
    port = port or free_port()
    cfg = smtp_config(listen or f"127.0.0.1:{port}", smtp, extra)
    s = server_factory(config=cfg,
                       router=router if router is not None
                       else f'<*> = "rec {out}"@pipe\n')
    install_app(s.base, "rec", REC)
    install_app(s.base, "gate", GATE)
    s.port = port
    s.start()
    return s


def delivered(out):
    """Messages the rec program has stored, by file name."""
    got = {}
    for f in os.listdir(out):
        if f.startswith("msg.") and not f.endswith(".tmp"):
            with open(os.path.join(out, f), "rb") as fh:
                got[f] = fh.read()
    return got


def wait_delivered(out, n):
    return wait_for(lambda: (lambda d: d if len(d) >= n else None)(
        delivered(out)), what=f"{n} delivered messages")


def session(s, helo="client.example"):
    c = RawSMTP(s.port)
    code, _ = c.reply()
    assert code == 220
    code, _ = c.cmd(f"EHLO {helo}")
    assert code == 250
    return c


MSG = "From: a@remote.example\r\nTo: joe@test.example\r\nSubject: hi\r\n\r\nhello\r\n"


# ---------------------------------------------------------------------------
# Greeting, EHLO, extensions


def test_ehlo_lists_every_extension(server_factory, out):
    s = start(server_factory, out, smtp="max-size = 123456\n")
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.example",
                      timeout=20) as c:
        code, text = c.ehlo()
        assert code == 250
        assert text.decode().split("\n")[0] == "mx.test.example"
        assert c.has_extn("size") and c.esmtp_features["size"] == "123456"
        for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "dsn"):
            assert c.has_extn(ext), ext
        assert not c.has_extn("starttls")      # no certificate configured
        code, text = c.docmd("STARTTLS")
        assert (code, text[:5]) == (502, b"5.5.1")


def test_greeting_and_basic_delivery_with_received(server_factory, out):
    s = start(server_factory, out)
    c = RawSMTP(s.port)
    code, lines = c.reply()
    assert code == 220 and lines[0].startswith("mx.test.example ESMTP")
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@remote.example>") == (250, ["2.1.0 sender <a@remote.example> ok"])
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    code, lines = c.reply()
    assert code == 250 and re.match(r"2\.0\.0 ok: queued as \d{16}$", lines[0])
    assert c.cmd("QUIT") == (221, ["2.0.0 mx.test.example closing connection"])
    assert c.at_eof()
    (data,) = wait_delivered(out, 1).values()
    head, rest = data.split(b"\n", 3)[:3], data.split(b"\n", 3)[3]
    assert head[0] == b"Received: from client.example ([127.0.0.1])"
    assert head[1] == b"\tby mx.test.example (mailpipe) with ESMTP;"
    assert re.match(rb"\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} "
                    rb"\d\d:\d\d:\d\d [+-]\d{4}$", head[2]), head[2]
    assert rest == MSG.replace("\r\n", "\n").encode()
    log = s.wait_log(r"SMTPI major: session=\d+ message .*")[0]
    assert "rcpts=1" in log and 'result="250 2.0.0 ok: queued as' in log


def test_helo_is_plain_smtp_in_received(server_factory, out):
    s = start(server_factory, out)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        assert c.helo("old.example")[0] == 250
        assert not c.does_esmtp
        c.sendmail("a@remote.example", ["joe@test.example"], MSG)
    (data,) = wait_delivered(out, 1).values()
    assert data.startswith(b"Received: from old.example ([127.0.0.1])\n"
                           b"\tby mx.test.example (mailpipe) with SMTP;\n")


def test_every_reply_carries_an_enhanced_status_code(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    for line in ("NOOP", "RSET", "VRFY joe", "HELP", "EXPN list", "BOGUS",
                 "RCPT TO:<joe@test.example>", "DATA",
                 "MAIL FROM:<a@remote.example>", "MAIL FROM:<a@remote.example>",
                 "RCPT TO:<x@nowhere.example>", "RCPT TO:<joe@test.example>",
                 "RSET", "QUIT"):
        code, lines = c.cmd(line)
        assert ESC.match(lines[0]), (line, code, lines)
        assert lines[0][0] == str(code)[0], (line, code, lines)
    assert c.at_eof()


def test_vrfy_help_noop_rset_and_unoffered_commands(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    code, lines = c.cmd("VRFY joe@test.example")
    assert code == 252 and lines[0].startswith("2.5.2 ")
    code, lines = c.cmd("HELP")
    assert code == 214 and "MAIL" in lines[0]
    assert c.cmd("NOOP") == (250, ["2.0.0 ok"])
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RSET") == (250, ["2.0.0 ok"])
    # RSET forgot the sender
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 503
    for verb in ("EXPN joe", "AUTH PLAIN", "BDAT 10 LAST"):
        code, lines = c.cmd(verb)
        assert code == 502 and lines[0].startswith("5.5.1"), verb
    c.close()


def test_sequence_errors(server_factory, out):
    s = start(server_factory, out)
    c = RawSMTP(s.port)
    c.reply()
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 503   # no EHLO yet
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 503
    code, lines = c.cmd("DATA")
    assert code == 503 and lines[0].startswith("5.5.1")
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("MAIL FROM:<b@remote.example>")[0] == 503   # nested
    code, lines = c.cmd("DATA")                              # no recipient
    assert code == 554 and lines[0] == "5.5.1 no valid recipients"
    # EHLO resets the transaction
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 503
    c.close()


# ---------------------------------------------------------------------------
# SIZE, 8BITMIME, DSN


def test_size_declared_at_mail(server_factory, out):
    s = start(server_factory, out, smtp="max-size = 1k\n")
    c = session(s)
    code, lines = c.cmd("MAIL FROM:<a@remote.example> SIZE=1025")
    assert code == 552 and lines[0].startswith("5.3.4")
    assert c.cmd("MAIL FROM:<a@remote.example> SIZE=1000")[0] == 250
    c.close()


def test_size_during_data_and_session_goes_on(server_factory, out):
    s = start(server_factory, out, smtp="max-size = 1k\n")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 100 + ".\r\n")
    code, lines = c.reply()
    assert code == 552 and lines[0].startswith("5.3.4")
    assert not queue_leftovers(s.base)
    small_one_after(c, out)


def small_one_after(c, out):
    """The same session can send a small message after a refused one."""
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: small\r\n\r\nok\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    (data,) = wait_delivered(out, 1).values()
    assert b"Subject: small" in data


def test_8bitmime_body_and_dot_stuffing_stored_exactly(server_factory, out):
    s = start(server_factory, out)
    body = bytes(b for b in range(0x80, 0x100)) + b"\r\n"
    body += b".leading dot\r\n..two dots\r\n.\t\r\n\xc3\xa9t\xc3\xa9\r\n"
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example> BODY=8BITMIME")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    lines = body.split(b"\r\n")[:-1]
    stuffed = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                       for l in lines)
    c.send(b"Subject: 8bit\r\n\r\n" + stuffed + b".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    (data,) = wait_delivered(out, 1).values()
    stored = data.split(b"\n\n", 1)[1]
    assert stored == body.replace(b"\r\n", b"\n")


def test_dsn_parameters_are_stored_in_the_queue_file(server_factory, out):
    s = start(server_factory, out, router=f'<*> = "gate {out}"@pipe\n')
    c = session(s, helo="dsn.client.example")
    assert c.cmd("MAIL FROM:<a@remote.example> RET=HDRS ENVID=QQ+2Bid7")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example> NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;orig+40x.example")[0] == 250
    assert c.cmd("RCPT TO:<ann@test.example> NOTIFY=NEVER")[0] == 250
    assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    code, lines = c.reply()
    assert code == 250
    qid = lines[0].rsplit(" ", 1)[1]
    # 250 only after the queue file is durable: it exists right now
    (path,) = s.queue_files()
    assert os.path.basename(path) == qid + ".msg"
    with open(path, "rb") as f:
        env = f.read().split(b"\n\n", 1)[0].decode().split("\n")
    for line in ("tag SMTP", "from <a@remote.example>", "client 127.0.0.1",
                 "helo dsn.client.example", "trusted yes", "ret HDRS",
                 "envid QQ+2Bid7",
                 "rcpt P 6 rfc822;orig+40x.example <joe@test.example>",
                 "rcpt P 1 - <ann@test.example>",
                 "rcpt P 0 - <bob@test.example>"):
        assert line in env, (line, env)
    c.cmd("QUIT")
    open(os.path.join(out, "go"), "w").close()
    s.wait_queue_empty()
    with open(os.path.join(out, "done")) as f:
        assert sorted(f.read().split()) == ["ann@test.example",
                                            "bob@test.example",
                                            "orig@x.example"]


# ---------------------------------------------------------------------------
# PIPELINING


def test_pipelining_everything_in_one_write(server_factory, out):
    s = start(server_factory, out)
    c = RawSMTP(s.port)
    c.send("EHLO client.example\r\n"
           "MAIL FROM:<a@remote.example>\r\n"
           "RCPT TO:<one@test.example>\r\n"
           "RCPT TO:<x@nowhere.example>\r\n"
           "RCPT TO:<two@test.example>\r\n"
           "DATA\r\n"
           "Subject: first\r\n\r\nfirst\r\n.\r\n"
           "MAIL FROM:<b@remote.example>\r\n"
           "RCPT TO:<three@test.example>\r\n"
           "DATA\r\n"
           "Subject: second\r\n\r\nsecond\r\n.\r\n"
           "NOOP\r\n"
           "QUIT\r\n")
    got = [c.reply() for _ in range(13)]
    codes = [g[0] for g in got]
    assert codes == [220, 250, 250, 250, 554, 250, 354, 250, 250, 250, 354,
                     250, 250], got
    assert got[4][1][0].startswith("5.4.4")          # no relay host
    assert "queued as" in got[7][1][0] and "queued as" in got[11][1][0]
    assert c.reply()[0] == 221
    assert c.at_eof()
    msgs = wait_delivered(out, 3)
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\n")[0]
                      for m in msgs.values())
    assert subjects == [b"first", b"first", b"second"]


def test_pipelining_with_smtplib_and_half_close(server_factory, out):
    s = start(server_factory, out)
    # a client that writes everything, then shuts its side, still gets
    # every reply
    c = RawSMTP(s.port)
    c.send("HELO client.example\r\nMAIL FROM:<>\r\nRCPT TO:<joe@test.example>"
           "\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    codes = [c.reply()[0] for _ in range(7)]
    assert codes == [220, 250, 250, 250, 354, 250, 221]
    assert c.at_eof()
    wait_delivered(out, 1)


# ---------------------------------------------------------------------------
# Addresses, relaying, pipe addresses, unknown users


def test_bad_addresses_are_refused(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    for rcpt in (b'RCPT TO:<"unbalanced@test.example>',
                 b"RCPT TO:<a\x01b@test.example>",
                 b"RCPT TO:<a\x7fb@test.example>",
                 b"RCPT TO:<joe@test.example",
                 b"RCPT TO:<>"):
        c.send(rcpt + b"\r\n")
        code, lines = c.reply()
        assert code in (501, 553), (rcpt, code, lines)
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    c.close()


def test_relay_denied_for_untrusted_client(server_factory, out):
    s = start(server_factory, out,
              smtp="trusted-networks = 10.0.0.0/8\nrelay-host = 127.0.0.1:9\n")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<x@elsewhere.example>")
    assert code == 550 and lines[0].startswith("5.7.1") and "relay" in lines[0]
    # local mail is still welcome
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    (data,) = wait_delivered(out, 1).values()
    assert b"Received: from client.example ([127.0.0.1])" in data


def test_relay_denied_without_relay_host_too(server_factory, out):
    s = start(server_factory, out, smtp="trusted-networks = 10.0.0.0/8\n")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<x@elsewhere.example>")
    assert code == 550 and lines[0].startswith("5.7.1")
    c.close()


def test_trusted_client_non_local_without_relay_host(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<x@elsewhere.example>")
    assert code == 554 and lines[0].startswith("5.4.4")
    c.close()


@pytest.mark.parametrize("async_", ["nobody", "anybody"])
def test_direct_pipe_address_refused(server_factory, out, async_):
    s = start(server_factory, out, smtp=f"enqueue-async = {async_}\n")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd(f'RCPT TO:<"rec {out}"@pipe>')
    assert code == 550 and lines[0].startswith("5.7.1"), lines
    code, lines = c.cmd("RCPT TO:<rec@PIPE>")
    assert code == 550 and lines[0].startswith("5.7.1"), lines
    c.close()


def test_unknown_user_refused_at_rcpt(server_factory, out):
    s = start(server_factory, out, router=f'<known> = "rec {out}"@pipe\n')
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<stranger@test.example>")
    assert code == 550 and lines[0].startswith("5.1.1"), lines
    assert c.cmd("RCPT TO:<known@test.example>")[0] == 250
    c.close()


def test_unknown_user_accepted_with_enqueue_async(server_factory, out):
    s = start(server_factory, out, smtp="enqueue-async = anybody\n",
              router=f'<known> = "rec {out}"@pipe\n')
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        refused = c.sendmail("a@remote.example",
                             ["stranger@test.example", "known@test.example"],
                             MSG)
        assert refused == {}
    # it fails later, in the queue
    (d,) = s.wait_deliveries(1, rcpt="stranger@test.example")
    assert d["result"] == "failed" and "5.1.1" in d["reason"]
    wait_delivered(out, 1)


def test_unqualified_postmaster_is_accepted(server_factory, out):
    s = start(server_factory, out)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.example")
        c.mail("a@remote.example")
        assert c.rcpt("<postmaster>")[0] == 250
        assert c.data(MSG)[0] == 250
    (d,) = s.wait_deliveries(1)
    assert d["rcpt"] == "postmaster@test.example"


# ---------------------------------------------------------------------------
# Limits


def test_max_recipients(server_factory, out):
    s = start(server_factory, out, smtp="max-recipients = 2\n")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<a@test.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@test.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<c@test.example>")
    assert code == 452 and lines[0].startswith("4.5.3")
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    s.wait_deliveries(2, result="delivered")
    assert {d["rcpt"] for d in s.deliveries()} == {"a@test.example",
                                                   "b@test.example"}


def test_queue_limit(server_factory, out):
    s = start(server_factory, out, extra="[queue]\nlimit = 1\n",
              router=f'<*> = "gate {out}"@pipe\n')
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.sendmail("a@remote.example", ["first@test.example"], MSG)
    wait_for(lambda: [f for f in os.listdir(out) if f.startswith("started.")],
             what="the gated delivery to start")
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("RCPT TO:<second@test.example>")
    assert code == 452 and lines[0].startswith("4.3.1"), lines
    assert c.cmd("RSET")[0] == 250
    open(os.path.join(out, "go"), "w").close()
    s.wait_queue_empty()

    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250

    # The file is gone from the directory a moment before the server has
    # made its removal durable and counted it out, so ask again meanwhile.
    # Only the RCPT is asked again: a refused RCPT counts neither as a bad
    # nor as a junk command, whereas an RSET per try would reach
    # max-junk-commands (421) when the directory fsync is slow.
    def second_accepted():
        code, lines = c.cmd("RCPT TO:<second@test.example>")
        if code == 452:
            assert lines[0].startswith("4.3.1"), lines
            return False
        assert code == 250, lines
        return True
    wait_for(second_accepted, what="room in the queue")
    c.close()


def test_idle_timeout(server_factory, out):
    s = start(server_factory, out, smtp="idle-timeout = 1s\n")
    c = RawSMTP(s.port, timeout=15)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    t0 = time.monotonic()
    code, lines = c.reply()      # the server's timer, not ours
    assert code == 421 and lines[0].startswith("4.4.2")
    assert time.monotonic() - t0 < 10
    assert c.at_eof()
    s.wait_log(r"SMTPI major: session=\d+ client=127.0.0.1 closed: idle timeout")


def test_max_connections(server_factory, out):
    s = start(server_factory, out, smtp="max-connections = 2\n")
    a, b = RawSMTP(s.port), RawSMTP(s.port)
    assert a.reply()[0] == 220 and b.reply()[0] == 220
    c = RawSMTP(s.port)
    code, lines = c.reply()
    assert code == 421 and lines[0].startswith("4.7.0")
    assert c.at_eof()
    assert a.cmd("QUIT")[0] == 221
    assert a.at_eof()
    s.wait_log(r"SMTPI major: session=1 client=127.0.0.1 closed: quit")

    def admitted():
        d = RawSMTP(s.port)
        ok = d.reply()[0] == 220
        d.close()
        return ok
    wait_for(admitted, what="a new session to be admitted")
    assert b.cmd("NOOP")[0] == 250      # the other session never noticed


def test_bad_command_counter(server_factory, out):
    s = start(server_factory, out, smtp="max-errors = 3\n")
    c = session(s)
    for _ in range(3):
        code, lines = c.cmd("FOO")
        assert code == 500 and lines[0].startswith("5.5.1")
    assert c.cmd("NOOP")[0] == 250      # good commands do not count
    code, _ = c.cmd("BAR")
    assert code == 500
    code, lines = c.reply()
    assert code == 421 and lines[0].startswith("4.7.0")
    assert c.at_eof()
    s.wait_log(r"closed: too many errors")


def test_junk_command_limit(server_factory, out):
    """max-junk-commands = 5: five NOOPs are answered, the sixth gets 421
    (instead of 250) and the connection closes."""
    s = start(server_factory, out, smtp="max-junk-commands = 5\n")
    c = session(s)
    for _ in range(5):
        assert c.cmd("NOOP") == (250, ["2.0.0 ok"])
    assert c.cmd("NOOP") == (421, ["4.7.0 mx.test.example too many junk "
                                   "commands, closing connection"])
    assert c.at_eof()
    s.wait_log(r"SMTPI major: session=\d+ client=127\.0\.0\.1 closed: "
               r"too many junk commands; messages=0 errors=0")
    # RSET, VRFY and HELP count too; pipelined commands after the 421 are
    # never answered
    c = session(s)
    c.send("RSET\r\nVRFY joe\r\nHELP\r\nRSET\r\nNOOP\r\nHELP\r\n"
           "NOOP\r\n")
    assert [c.reply()[0] for _ in range(6)] == [250, 252, 214, 250, 250, 421]
    assert c.at_eof()


def test_junk_counter_resets_when_a_message_is_accepted(server_factory, out):
    """A long session with an RSET and a NOOP before every message (far
    more junk commands than the limit in total) is never cut: each accepted
    message resets the counter."""
    s = start(server_factory, out, smtp="max-junk-commands = 5\n")
    c = session(s)
    for i in range(8):
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("NOOP")[0] == 250
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd(f"RCPT TO:<r{i}@test.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        code, lines = c.cmd(f"Subject: m{i}\r\n\r\nbody\r\n.")
        assert code == 250 and "queued as" in lines[0], lines
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("NOOP")[0] == 250
    # 24 junk commands so far; the count since the last message is 2
    for _ in range(3):
        assert c.cmd("VRFY joe")[0] == 252
    assert c.cmd("NOOP")[0] == 421
    assert c.at_eof()
    wait_delivered(out, 8)
    s.wait_log(r"closed: too many junk commands; messages=8 errors=0")


def test_line_too_long(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    code, lines = c.cmd("NOOP " + "x" * 5000)
    assert code == 500 and lines[0].startswith("5.5.2")
    # in pieces, too
    c.send("NOOP " + "y" * 3000)
    c.send("z" * 3000 + "\r\nNOOP\r\n")
    assert c.reply()[0] == 500
    assert c.reply() == (250, ["2.0.0 ok"])
    # a line just under the limit is fine (and a bare LF ends a command)
    code, _ = c.cmd("NOOP " + "x" * 2000)
    assert code == 250
    c.send("NOOP\n")
    assert c.reply()[0] == 250
    c.close()


def test_dropped_connection_during_data_leaves_nothing(server_factory, out):
    s = start(server_factory, out)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: cut\r\n\r\n" + "line\r\n" * 20000)
    c.close()
    s.wait_log(r"session=\d+ client=127.0.0.1 connection lost during DATA")
    s.wait_log(r"session=\d+ client=127.0.0.1 closed:")
    assert not queue_leftovers(s.base)
    assert not delivered(out)
    assert "ENQUEUER low-level: id=" not in s.log()


# ---------------------------------------------------------------------------
# SMTP smuggling: one DATA is at most one message

SMUGGLED = ("MAIL FROM:<evil@remote.example>\r\n"
            "RCPT TO:<victim@test.example>\r\n"
            "DATA\r\n"
            "Subject: smuggled\r\n\r\nevil\r\n")


@pytest.mark.parametrize("trick", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n",
                                   b"\r\n.\r", b"\r.\r\n", b"a\nb\r\n",
                                   b"a\rb\r\n"])
def test_smuggling_is_refused(server_factory, out, trick):
    s = start(server_factory, out)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: cover\r\n\r\ncover" + trick + SMUGGLED.encode() +
           b"\r\n.\r\nNOOP\r\n")
    code, lines = c.reply()
    assert code == 554 and lines[0].startswith("5.6.0"), lines
    assert c.reply() == (250, ["2.0.0 ok"])        # the NOOP, nothing else
    assert c.cmd("QUIT")[0] == 221
    s.wait_log(r"SMTPI problems: .*bare CR or LF in DATA")
    assert not queue_leftovers(s.base)
    assert not delivered(out)
    assert s.deliveries() == []


# ---------------------------------------------------------------------------
# Listeners


def test_several_listen_addresses(server_factory, out):
    p1, p2 = free_port(), free_port()
    s = start(server_factory, out, listen=f"127.0.0.1:{p1}, 127.0.0.1:{p2}",
              port=p1)
    for p in (p1, p2):
        c = RawSMTP(p)
        assert c.reply()[0] == 220
        assert c.cmd("QUIT")[0] == 221
        c.close()


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(),
                    reason="this machine has no IPv6 loopback address ::1")
def test_ipv6_listener(server_factory, out):
    p6 = free_port(socket.AF_INET6, "::1")
    p4 = free_port()
    s = start(server_factory, out, listen=f"[::1]:{p6}, 127.0.0.1:{p4}",
              port=p4)
    c = RawSMTP(p6, host="::1", family=socket.AF_INET6)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO v6.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    # ::1 is in the default trusted networks: relaying is not denied
    code, lines = c.cmd("RCPT TO:<x@elsewhere.example>")
    assert code == 554 and lines[0].startswith("5.4.4")
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    (data,) = wait_delivered(out, 1).values()
    assert data.startswith(b"Received: from v6.example ([IPv6:::1])\n")


# ---------------------------------------------------------------------------
# STARTTLS


@pytest.fixture
def cert(tmpdir755):
    key = os.path.join(tmpdir755, "key.pem")
    crt = os.path.join(tmpdir755, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=mx.test.example"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def tls_start(server_factory, out, cert, smtp=""):
    crt, key = cert
    return start(server_factory, out,
                 smtp=f"tls-cert = {crt}\ntls-key = {key}\n" + smtp)


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_starttls_with_smtplib(server_factory, out, cert):
    s = tls_start(server_factory, out, cert)
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="tls.example",
                      timeout=20) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=no_verify())
        assert code == 220
        c.ehlo()
        assert not c.has_extn("starttls")
        assert c.has_extn("pipelining")
        assert c.docmd("STARTTLS")[0] == 503
        c.sendmail("a@remote.example", ["joe@test.example"], MSG)
    (data,) = wait_delivered(out, 1).values()
    first = data.split(b";\n", 1)[0]
    assert first.startswith(b"Received: from tls.example ([127.0.0.1])\n"
                            b"\tby mx.test.example (mailpipe) with ESMTPS")
    assert b"TLS" in first


def test_starttls_requires_ehlo_again(server_factory, out, cert):
    s = tls_start(server_factory, out, cert)
    c = session(s)
    assert c.cmd("STARTTLS")[0] == 220
    c.sock = no_verify().wrap_socket(c.sock, server_hostname="mx.test.example")
    code, lines = c.cmd("MAIL FROM:<a@remote.example>")
    assert code == 503 and lines[0].startswith("5.5.1")
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    c.cmd("QUIT")


def test_starttls_plaintext_injection_is_discarded(server_factory, out, cert):
    """CVE-2011-0411: commands sent with STARTTLS must not be answered."""
    s = tls_start(server_factory, out, cert)
    c = session(s)
    c.send("STARTTLS\r\nRSET\r\nMAIL FROM:<inject@remote.example>\r\n")
    code, lines = c.reply()
    assert code == 220 and lines[0].startswith("2.0.0")
    assert c.buf == b""
    c.sock = no_verify().wrap_socket(c.sock, server_hostname="mx.test.example")
    # the first reply after the handshake is HELP's, not RSET's or MAIL's
    code, lines = c.cmd("HELP")
    assert code == 214, (code, lines)
    assert c.cmd("EHLO client.example")[0] == 250
    code, _ = c.cmd("RCPT TO:<joe@test.example>")
    assert code == 503                   # the injected MAIL never happened
    c.cmd("QUIT")
    s.wait_log(r"bytes sent after STARTTLS discarded \(CVE-2011-0411\)")


# ---------------------------------------------------------------------------
# Stopping


def test_sigterm_421_to_idle_sessions_busy_ones_finish(server_factory, out):
    s = start(server_factory, out)
    idle = session(s)
    busy = session(s)
    assert busy.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert busy.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send("Subject: late\r\n\r\nfirst half\r\n")
    s.proc.send_signal(signal.SIGTERM)
    code, lines = idle.reply()
    assert code == 421 and lines[0].startswith("4.3.2")
    assert idle.at_eof()
    busy.send("second half\r\n.\r\n")
    code, lines = busy.reply()
    assert code == 250 and "queued as" in lines[0]
    code, lines = busy.reply()
    assert code == 421 and lines[0].startswith("4.3.2")
    assert busy.at_eof()
    assert s.proc.wait(30) == 0
    s.proc = None
    s.logfile.close()
    # the message was queued durably; it is delivered after a restart
    s.start()
    (data,) = wait_delivered(out, 1).values()
    assert b"first half\nsecond half\n" in data


# ---------------------------------------------------------------------------
# A third-party client


@pytest.mark.skipif(not os.path.exists("/usr/bin/swaks"),
                    reason="swaks is not installed")
def test_swaks_pipelining_over_starttls(server_factory, out, cert):
    s = tls_start(server_factory, out, cert)
    r = subprocess.run(["/usr/bin/swaks", "--server", f"127.0.0.1:{s.port}",
                        "--helo", "swaks.example", "--from", "a@remote.example",
                        "--to", "joe@test.example,ann@test.example",
                        "--tls", "--pipeline", "--header", "Subject: swaks",
                        "--body", "via swaks"],
                       capture_output=True, timeout=60)
    text = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, text
    assert "<~  250 2.0.0 ok: queued as" in text
    msgs = wait_delivered(out, 2)
    for data in msgs.values():
        assert data.startswith(b"Received: from swaks.example ([127.0.0.1])\n"
                               b"\tby mx.test.example (mailpipe) with ESMTPS")
        assert b"Subject: swaks\n" in data and b"via swaks" in data
