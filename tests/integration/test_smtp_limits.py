"""Client limits of the SMTP listener against the real server (issue 11,
point 4): the DATA deadline and the minimum DATA rate (slowloris), the
per-command-line deadline, max-connections-per-client, STARTTLS refused
inside a transaction, and ORCPT checked as a mailbox before it reaches a
program. docs/SMTP.md "Limits and defences" describes the behaviour."""
import os
import select
import time

from conftest import RawSMTP, install_app, queue_leftovers, wait_for
# cert and out are test_smtp's fixtures (the self-signed certificate, the
# program's output directory), used here by name
from test_smtp import (MSG, cert, delivered, no_verify, out, session,  # noqa
                       start, tls_start, wait_delivered)  # noqa

# records ORIGINAL_RECIPIENT and its -r argument ([RCPT]): OUT/orig.ID
ORIG = r"""
    #!/bin/sh
    out=$1
    cat > /dev/null
    printf '%s\n%s\n%s\n' "$ORIGINAL_RECIPIENT" "$2" "$3" > "$out/orig.$DELIVERY_ID.tmp"
    mv "$out/orig.$DELIVERY_ID.tmp" "$out/orig.$DELIVERY_ID"
"""


def in_data(s):
    """A session that got its 354."""
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    return c


def trickle(c, pieces, interval, limit):
    """Send the pieces one by one, interval seconds apart, until the server
    answers (or closes); (code, lines, seconds) of its reply, or None when
    every piece went out within limit seconds without an answer."""
    t0 = time.monotonic()
    for p in pieces:
        if time.monotonic() - t0 > limit:
            break
        try:
            c.send(p)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r, _, _ = select.select([c.sock], [], [], interval)
        if r:
            code, lines = c.reply()
            return code, lines, time.monotonic() - t0
    return None


def no_trace(s, out):
    """Nothing queued, no .tmp left, nothing delivered."""
    assert not queue_leftovers(s.base)
    assert not delivered(out)
    assert s.deliveries() == []


# ---------------------------------------------------------------------------
# DATA deadline and minimum rate


def expect_cut(s, out, c, pieces, interval, text, secs, logged, closed):
    """Trickle the pieces into session c until the server cuts it: 421
    4.4.2 TEXT within secs (min, max) seconds, the connection closed, the
    logged (unless None) and closed lines in the log, nothing queued or
    delivered."""
    got = trickle(c, pieces, interval, 15)
    assert got is not None, "the slow client was never cut"
    code, lines, took = got
    assert code == 421 and lines == [f"4.4.2 mx.test.example {text}, "
                                     "closing connection"], lines
    assert secs[0] <= took < secs[1], took
    assert c.at_eof()
    c.close()                    # so the server need not linger
    if logged:
        s.wait_log(r"SMTPI major: session=\d+ client=127\.0\.0\.1 " +
                   logged)
    s.wait_log(r"session=\d+ client=127\.0\.0\.1 closed: " + closed)
    no_trace(s, out)


def test_slowloris_data_cut_at_the_deadline(server_factory, out):
    """One byte every 0.2 s keeps idle-timeout (5m) happy for ever; the DATA
    deadline (data-timeout = 2s) cuts it: 421 4.4.2, close, nothing kept."""
    s = start(server_factory, out, smtp="data-timeout = 2s\n"
              "min-data-rate = 0\n")
    expect_cut(s, out, in_data(s), (b"x" for _ in range(100)), 0.2,
               "DATA time limit exceeded", (1.5, 8),
               r"data-timeout exceeded during DATA after \d+ bytes in "
               r"\d+\.\d+s: message discarded, nothing queued",
               "DATA time limit")


def test_min_data_rate(server_factory, out):
    """min-data-rate = 1k after a 1 s grace: 100 bytes/s is cut with 421
    4.4.2 just after the grace; 3 KB/s for 2 s is accepted."""
    s = start(server_factory, out, smtp="min-data-rate = 1k\n"
              "min-data-rate-grace = 1s\n")
    expect_cut(s, out, in_data(s), (b"0123456789" for _ in range(150)), 0.1,
               "DATA too slow", (0.8, 6),
               r"rate below min-data-rate during DATA after \d+ bytes",
               "DATA too slow")

    # fast enough: 600 bytes every 0.2 s, past the grace period
    c = in_data(s)
    body = [b"Subject: fast\r\n\r\n"] + [b"y" * 598 + b"\r\n"] * 10
    assert trickle(c, body, 0.2, 15) is None
    c.send(b".\r\n")
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0], lines
    assert c.cmd("QUIT")[0] == 221
    wait_delivered(out, 1)


def test_command_line_trickle_is_cut(server_factory, out):
    """idle-timeout bounds each command line, not each read: "NOOP\\r\\n"
    one byte every 0.3 s (1.8 s in all) is cut at idle-timeout = 1s, while
    complete commands every 0.5 s keep a session for longer than that."""
    s = start(server_factory, out, smtp="idle-timeout = 1s\n")
    c = session(s)
    for _ in range(4):
        assert c.cmd("NOOP")[0] == 250
        time.sleep(0.5)          # the pace of the client under test
    expect_cut(s, out, c, [bytes([b]) for b in b"NOOP\r\n"], 0.3,
               "command timeout", (0.2, 5), None,
               r"command timeout \(line incomplete\)")


# ---------------------------------------------------------------------------
# max-connections-per-client


def test_max_connections_per_client(server_factory, out):
    """Two sessions from 127.0.0.1 (not trusted here): a third gets 421
    4.7.0 and is closed; the two go on; after one ends a new one is in."""
    s = start(server_factory, out, smtp="max-connections-per-client = 2\n"
              "trusted-networks =\n")
    a, b = session(s), session(s)
    c = RawSMTP(s.port)
    code, lines = c.reply()
    assert code == 421 and lines == ["4.7.0 mx.test.example too many "
                                     "connections from your address, try "
                                     "again later"]
    assert c.at_eof()
    c.close()                    # so the server need not linger
    s.wait_log(r"SMTPI problems: connection refused: client=127\.0\.0\.1 "
               r"has 2 sessions open \(max-connections-per-client\)")
    assert a.cmd("NOOP")[0] == 250
    assert b.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert b.cmd("RCPT TO:<joe@test.example>")[0] == 250
    assert b.cmd("DATA")[0] == 354
    b.send(MSG + ".\r\n")
    assert b.reply()[0] == 250
    assert a.cmd("QUIT")[0] == 221
    assert a.at_eof()
    a.close()

    def admitted():
        d = RawSMTP(s.port)
        code = d.reply()[0]
        d.close()
        return code == 220
    wait_for(admitted, what="a new session to be admitted")
    assert b.cmd("QUIT")[0] == 221
    wait_delivered(out, 1)


def test_trusted_clients_are_not_limited_per_client(server_factory, out):
    """127.0.0.1 is in the default trusted-networks: not held to the
    per-client limit (max-connections still applies)."""
    s = start(server_factory, out, smtp="max-connections-per-client = 1\n")
    a, b, c = session(s), session(s), session(s)
    for x in (a, b, c):
        assert x.cmd("QUIT")[0] == 221
    assert "max-connections-per-client" not in s.log()


# ---------------------------------------------------------------------------
# STARTTLS inside a transaction


def test_starttls_after_mail_is_refused(server_factory, out, cert):
    s = tls_start(server_factory, out, cert)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    code, lines = c.cmd("STARTTLS")
    assert code == 503 and lines == ["5.5.1 STARTTLS inside a mail "
                                     "transaction; send RSET first"]
    assert c.cmd("RCPT TO:<joe@test.example>")[0] == 250   # still plaintext
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("STARTTLS")[0] == 220
    c.sock = no_verify().wrap_socket(c.sock, server_hostname="mx.test.example")
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    s.wait_log(r"bad command: 503 5\.5\.1 STARTTLS inside a mail transaction")


# ---------------------------------------------------------------------------
# ORCPT


def orig_records(out):
    got = {}
    for f in os.listdir(out):
        if f.startswith("orig.") and not f.endswith(".tmp"):
            with open(os.path.join(out, f)) as fh:
                got[f] = fh.read().split("\n")[:3]
    return got


def test_orcpt_is_checked_as_a_mailbox(server_factory, out):
    """An rfc822 ORCPT that is not a mailbox is refused 501 5.5.4; a good
    one reaches ORIGINAL_RECIPIENT and -r exactly as decoded; another
    addr-type is accepted (kept for DSN) but the program sees the RCPT
    address."""
    s = start(server_factory, out,
              router=f'<*> = "[RCPT] orig {out}"@pipe\n')
    install_app(s.base, "orig", ORIG)
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    for bad in ("rfc822;joe",                   # no domain
                "rfc822;+22joe@x.example",      # unbalanced quote
                "rfc822;joe+20smith@x.example",  # a space: not a dot-string
                "rfc822;+3Cjoe@x.example+3E",   # angle brackets
                "rfc822;joe@",                  # empty domain
                "RFC822;@x.example",            # empty local part
                "rfc822;-r@x.example+20-f"):    # an option smuggled in
        code, lines = c.cmd(f"RCPT TO:<joe@test.example> ORCPT={bad}")
        assert code == 501 and lines[0].startswith("5.5.4 bad ORCPT "
                                                   "address"), (bad, lines)
    assert c.cmd("RCPT TO:<one@test.example> "
                 "ORCPT=rfc822;Joe+2BSmith@Old.Example")[0] == 250
    assert c.cmd("RCPT TO:<two@test.example> "
                 "ORCPT=rfc822;+22joe+5C+22q+22@[192.0.2.1]")[0] == 250
    assert c.cmd("RCPT TO:<three@test.example> "
                 "ORCPT=x400;c+3Dus+3Ba+3D+3Bp+3Dexample")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    got = wait_for(lambda: (lambda g: g if len(g) >= 3 else None)(
        orig_records(out)), what="three deliveries")
    assert sorted(got.values()) == sorted([
        ["Joe+Smith@Old.Example", "-r", "Joe+Smith@Old.Example"],
        ['"joe\\"q"@[192.0.2.1]', "-r", '"joe\\"q"@[192.0.2.1]'],
        ["three@test.example", "-r", "three@test.example"],
    ])
    assert len(s.wait_log(r"SMTPI problems: session=\d+ client=127\.0\.0\.1 "
                          r"bad command: 501 5\.5\.4 bad ORCPT address",
                          count=7)) == 7
