"""Large SMTP messages stream to their queue file (issue 11, point 3): a
message over 256 KiB is not held in memory but written to Queue/ as it
arrives; what reaches the program is byte for byte what a held message
would have been; every refusal (bare LF, max-size, a header over 1 MiB,
the hop limit) and a dropped connection leave no queue file behind.
docs/SMTP.md "Large messages" describes the behaviour; the memory bound
itself is test_memory.py's."""
import hashlib
import os
import smtplib

from conftest import queue_leftovers, wait_for
# out and cert are test_smtp's fixtures (the program's output directory,
# the self-signed certificate), used here by name
from test_smtp import (cert, delivered, no_verify, out, session,  # noqa
                       small_one_after, start, wait_delivered)  # noqa

STREAMED = r"SMTPI low-level: session=\d+ client=127\.0\.0\.1 message over " \
           r"262144 bytes: streamed to queue file "


def body_lines(n, seed=b""):
    """n distinct CRLF lines: dots at the start, 8-bit octets, long and
    empty lines, so dot-stuffing and line ends are exercised everywhere."""
    out = []
    for i in range(n):
        k = i % 7
        if k == 0:
            out.append(b".dot line %d" % i + seed)
        elif k == 1:
            out.append(b"")
        elif k == 2:
            out.append(b"\xc3\xa9t\xc3\xa9 %d " % i + b"z" * 900)
        elif k == 3:
            out.append(b"..two dots %d" % i)
        else:
            out.append(b"line %d " % i + b"y" * (i % 120))
    return out


def wire(lines):
    """The lines dot-stuffed with CRLF ends, as a client sends them."""
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines)


def stored(lines):
    """The same lines as the queue keeps them (LF ends, no stuffing)."""
    return b"".join(l + b"\n" for l in lines)


def begin(s, rcpt="joe@test.example"):
    c = session(s)
    assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    return c


HEAD = b"From: a@remote.example\r\nTo: joe@test.example\r\nSubject: big\r\n\r\n"


def test_a_large_message_is_streamed_and_stored_exactly(server_factory, out):
    s = start(server_factory, out)
    lines = body_lines(9000)           # about 3 MiB
    c = begin(s)
    data = wire(lines)
    # in pieces that split CRLF and the dot-stuffing anywhere
    c.send(HEAD)
    for i in range(0, len(data), 65521):
        c.send(data[i:i + 65521])
    # the end of the data and the next command in one write (PIPELINING)
    c.send(b".\r\nNOOP\r\n")
    code, text = c.reply()
    assert code == 250 and text[0].startswith("2.0.0 ok: queued as "), text
    assert c.reply() == (250, ["2.0.0 ok"])
    assert c.cmd("QUIT")[0] == 221
    s.wait_log(STREAMED)
    (got,) = wait_delivered(out, 1).values()
    assert got.startswith(b"Received: from client.example ([127.0.0.1])\n"
                          b"\tby mx.test.example (mailpipe) with ESMTP;\n")
    want = HEAD.replace(b"\r\n", b"\n") + stored(lines)
    assert got.endswith(b"\n" + want)
    assert len(got) - len(want) < 200          # only the Received: field
    (d,) = s.wait_deliveries(1)
    assert d["result"] == "delivered"
    s.wait_queue_empty()


def test_several_streamed_messages_in_one_session(server_factory, out):
    s = start(server_factory, out)
    sums = set()
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.example",
                      timeout=60) as c:
        for k in range(3):
            lines = body_lines(2000 + 500 * k, seed=b" %d" % k)
            sums.add(hashlib.sha256(HEAD.replace(b"\r\n", b"\n") +
                                    stored(lines)).hexdigest())
            c.ehlo("client.example")
            # smtplib dot-stuffs itself: hand it the unstuffed lines
            assert c.sendmail("a@remote.example", ["joe@test.example"],
                              HEAD + b"".join(l + b"\r\n" for l in lines)) \
                == {}
    got = wait_delivered(out, 3)
    assert {hashlib.sha256(m.split(b"\n", 3)[3]).hexdigest()
            for m in got.values()} == sums
    s.wait_queue_empty()


def test_streamed_over_starttls(server_factory, out, cert):
    s = start(server_factory, out, smtp=f"tls-cert = {cert[0]}\n"
              f"tls-key = {cert[1]}\n")
    lines = body_lines(4000)
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.example",
                      timeout=60) as c:
        c.starttls(context=no_verify())
        c.ehlo("client.example")
        assert c.sendmail("a@remote.example", ["joe@test.example"],
                          HEAD + b"".join(l + b"\r\n" for l in lines)) == {}
    s.wait_log(STREAMED)
    (got,) = wait_delivered(out, 1).values()
    assert b" with ESMTPS (TLS" in got.split(b"\n\n", 1)[0]
    assert got.endswith(b"\n" + HEAD.replace(b"\r\n", b"\n") + stored(lines))


def test_dropped_connection_while_streaming_leaves_nothing(server_factory,
                                                           out):
    s = start(server_factory, out)
    c = begin(s)
    c.send(HEAD + wire(body_lines(3000)))
    s.wait_log(STREAMED)
    # the ID.tmp is there while the data comes
    wait_for(lambda: queue_leftovers(s.base), what="the streamed ID.tmp")
    c.close()
    s.wait_log(r"session=\d+ client=127.0.0.1 connection lost during DATA")
    wait_for(lambda: not queue_leftovers(s.base), what="the ID.tmp removed")
    assert not delivered(out)
    assert s.deliveries() == []


def refused_after_streaming(s, out, tail, code, status, text=None):
    """Stream enough to open the queue file, send tail, expect the reply;
    nothing is left and the session takes a small message after it."""
    c = begin(s)
    c.send(HEAD + wire(body_lines(3000)))
    s.wait_log(STREAMED)
    c.send(tail)
    got, lines = c.reply()
    assert (got, lines[0][:5]) == (code, status), lines
    if text:
        assert text in lines[0], lines
    wait_for(lambda: not queue_leftovers(s.base), what="the ID.tmp removed")
    small_one_after(c, out)
    # the program has written its file; its delivery line follows
    (d,) = s.wait_deliveries(1)
    assert d["result"] == "delivered"


def test_bare_lf_after_streaming_started(server_factory, out):
    s = start(server_factory, out)
    refused_after_streaming(s, out, b"cover\n.\nMAIL FROM:<e@x>\r\n"
                            b"more\r\n.\r\n", 554, "5.6.0", "bare CR or LF")
    s.wait_log(r"SMTPI problems: .*bare CR or LF in DATA")


def test_max_size_passed_while_streaming(server_factory, out):
    s = start(server_factory, out, smtp="max-size = 1m\n")
    refused_after_streaming(s, out, wire(body_lines(6000)) + b".\r\n",
                            552, "5.3.4", "maximum message size")


def test_hop_limit_checked_on_a_streamed_header(server_factory, out):
    s = start(server_factory, out)         # hop-limit 30 (the default)
    hops = b"".join(b"Received: from h%d by h%d; Mon, 7 Dec 2026 10:00:00 "
                    b"+0000\r\n" % (i, i) for i in range(60))
    c = begin(s)
    c.send(hops + HEAD + wire(body_lines(3000)) + b".\r\n")
    code, lines = c.reply()
    assert code == 554 and lines[0] == "5.4.6 too many hops", lines
    c.cmd("QUIT")
    assert not queue_leftovers(s.base)
    assert not delivered(out)


def test_header_over_1_mib_is_refused(server_factory, out):
    s = start(server_factory, out)
    c = begin(s)
    fields = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 200)
                      for i in range(6000))       # about 1.3 MB, no body
    c.send(fields + b"\r\nbody\r\n.\r\n")
    code, lines = c.reply()
    assert code == 552 and lines[0] == "5.3.4 message header exceeds " \
        "1048576 bytes", lines
    c.cmd("QUIT")
    assert not queue_leftovers(s.base)
    assert not delivered(out)
