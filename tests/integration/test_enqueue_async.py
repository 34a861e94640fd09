"""Enqueue Asynchronously (issue 13 point 5; docs/SMTP.md and
docs/LOCAL-SUBMISSION.md "Enqueue Asynchronously"): each of the six
classes against each kind of submitter, with the real server.

- An SMTP client in trusted-networks (a "client": 127.0.0.1), one outside
  it (a "non-client": the same loopback listener reached from 127.0.0.2,
  trusted-networks being 127.0.0.1/32), and local submission (a
  Submitted file: "authenticated", and counted as a client).
- The recipients are in a local domain without a router record (unknown
  users), so relay control never decides the reply.
- Synchronous (async does not apply): SMTP refuses the recipient at RCPT
  with 550 5.1.1 and nothing of it is queued; local submission logs the
  refusal under SUBMIT and queues the other recipients, and a file with
  no recipient left is renamed .bad.
- Asynchronous: SMTP answers 250 at RCPT and DATA, local submission
  queues the whole file, and the recipient fails in the queue: one
  delivery line with result=failed (where the dequeuer's report starts).
"""
import os
import socket

import pytest

from conftest import free_port, message, smtp_config, wait_for

ROUTER = "<known> = null\n"
UNKNOWN = "550 5.1.1"

# class: does it apply to (a client, a non-client, local submission)?
CLASSES = {
    "anybody": (True, True, True),
    "nobody": (False, False, False),
    "authenticated": (False, False, True),
    "unauthenticated": (True, True, False),
    "clients": (True, False, True),
    "non-clients": (False, True, False),
}


@pytest.fixture(params=sorted(CLASSES))
def srv(request, server_factory):
    port = free_port()
    cfg = smtp_config(f"127.0.0.1:{port}",
                      f"enqueue-async = {request.param}\n"
                      "trusted-networks = 127.0.0.1/32\n")
    s = server_factory(config=cfg, router=ROUTER)
    s.port = port
    s.cls = request.param
    s.start()
    return s


class Client:
    """A bare SMTP client from a chosen loopback source address."""

    def __init__(self, port, source):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20,
                                             source_address=(source, 0))
        self.buf = b""
        assert self.reply()[0] == 220
        assert self.cmd("EHLO client.example")[0] == 250

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, f"connection closed; pending {self.buf!r}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode()
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), " ".join(l[4:] for l in lines)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.cmd("QUIT")
        self.sock.close()


def failed_in_queue(s, rcpt):
    return [d for d in s.deliveries()
            if d.get("rcpt") == rcpt and d.get("result") == "failed"]


def wait_delivered(s, rcpt):
    return s.wait_deliveries(1, rcpt=rcpt, result="delivered")


@pytest.mark.parametrize("who", ["client", "non-client"])
def test_smtp(srv, who):
    source = "127.0.0.1" if who == "client" else "127.0.0.2"
    applies = CLASSES[srv.cls][0 if who == "client" else 1]
    tag = f"{who}.{srv.cls}"
    c = Client(srv.port, source)
    srv.wait_log(rf"client={source} connected \(trusted="
                 rf"{'yes' if who == 'client' else 'no'},")
    assert c.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
    code, text = c.cmd(f"RCPT TO:<gone.{tag}@test.example>")
    if applies:
        assert code == 250, text
    else:
        # the routing failure is the RCPT reply: no report will be owed
        assert (code, text[:5]) == (550, "5.1.1"), text
        assert "unknown user" in text
    assert c.cmd(f"RCPT TO:<known@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.sock.sendall(message(to=f"gone.{tag}@test.example").replace(
        "\n", "\r\n").encode() + b".\r\n")
    code, text = c.reply()
    assert code == 250, text
    c.close()
    wait_delivered(srv, "known@test.example")
    srv.wait_queue_empty()
    if applies:
        (d,) = srv.wait_deliveries(1, rcpt=f"gone.{tag}@test.example",
                                   result="failed")
        assert d["reason"].startswith(UNKNOWN), d
    else:
        # the whole message has been handled: nothing of it failed later
        assert failed_in_queue(srv, f"gone.{tag}@test.example") == []


def test_local_submission(srv):
    applies = CLASSES[srv.cls][2]
    mixed = srv.submit(message(to="known@test.example, gone@test.example"),
                       name="mixed")
    lone = srv.submit(message(to="gone2@test.example"), name="lone")
    wait_delivered(srv, "known@test.example")
    if applies:
        for rcpt in ("gone@test.example", "gone2@test.example"):
            (d,) = srv.wait_deliveries(1, rcpt=rcpt, result="failed")
            assert d["reason"].startswith(UNKNOWN), d
        srv.wait_log(r"Submitted/lone\.sub queued id=")
        srv.wait_queue_empty()
        assert "refused" not in srv.log_since_start()
        assert not os.path.exists(lone[:-4] + ".bad")
    else:
        line = srv.wait_log(r"SUBMIT problems: Submitted/mixed\.sub rcpt "
                            r"<gone@test\.example> refused: ([^\n]*)")[0]
        assert line.startswith(UNKNOWN + " unknown user"), line
        assert "enqueue-async does not apply" in line
        wait_for(lambda: os.path.exists(lone[:-4] + ".bad"), what=".bad")
        srv.wait_log(r"Submitted/lone\.sub rcpt <gone2@test\.example> "
                     rf"refused: {UNKNOWN}")
        srv.wait_log(r"Submitted/lone\.sub rejected: every recipient was "
                     r"refused")
        srv.wait_queue_empty()
        assert failed_in_queue(srv, "gone@test.example") == []
        assert failed_in_queue(srv, "gone2@test.example") == []
        assert not os.path.exists(lone)
    assert not os.path.exists(mixed)
