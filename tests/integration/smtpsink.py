"""A scriptable SMTP sink for tests, built on aiosmtpd (Debian python3-aiosmtpd).

It listens on 127.0.0.1 on a free port in a background thread, records
every connection (peer, EHLO/HELO name, commands, TLS) and every
transaction (MAIL FROM and its options, each RCPT with its options and the
reply given, the message bytes as received after dot-unstuffing, the final
reply, whether TLS was on, whether the client pipelined), and answers as a
script says.

The script is a dict; keys and what they change:

    "greeting"          the 220 line (a 4xx/5xx is sent, then the sink closes)
    "ehlo", "helo"      reply to EHLO / HELO (default: 250 with the extensions)
    "starttls"          reply to STARTTLS (default: 220 and the handshake)
    "mail", "mail:ADDR" reply to MAIL FROM (the sender-specific key wins)
    "rcpt", "rcpt:ADDR" reply to RCPT TO (the recipient-specific key wins)
    "data"              reply to the DATA command (default 354)
    "message"           reply after the final dot (default "250 2.0.0 ok")
    "rset"              reply to RSET

A value is a reply line ("550 5.1.1 no such user"; "\\n" separates the
lines of a multi-line reply), "hang" (never answer), "close" (drop the
connection without an answer), or a list of such values used one per
command in turn (None = default); when a list runs out the default applies.

Extensions are switched with keyword arguments: pipelining, eightbitmime,
dsn, enhanced, smtputf8 (all True by default), size (the SIZE limit,
32 MiB by default; 0 = no SIZE keyword), tls (None, "starttls" or "broken": STARTTLS offered but
the handshake cannot succeed), require_tls, port (0 = a free one).

From Python:

    with Sink({"rcpt:bad@x.example": "550 5.1.1 no such user"}) as sink:
        ... relay-host = sink.host_port ...
        sink.wait_transactions(1)
        assert sink.transactions[0]["rcpts"][0]["addr"] == "good@x.example"
        assert sink.connections == 1

As a program (for the C unit tests):

    python3 smtpsink.py --dir DIR [--script JSON] [--tls] [--size N]
                        [--no-pipelining] [--no-8bitmime] [--no-dsn] ...

writes DIR/record.json after every change (atomically), the message bytes
of transaction N to DIR/data-N.eml, and DIR/port once it listens; it runs
until SIGTERM (or until its parent is gone).
"""
import argparse
import asyncio
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

_PATH_RE = re.compile(r"^\s*<([^>]*)>\s*(.*)$")
_DEFAULT_FINAL = "250 2.0.0 ok"


def make_cert(directory):
    """A self-signed certificate and key for CN=localhost, valid one day."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def _parse_path(arg, keyword):
    """("addr", ["OPT=V", ...]) from "FROM:<addr> OPT=V", or (None, None)."""
    if arg is None or arg[:len(keyword)].upper() != keyword:
        return None, None
    m = _PATH_RE.match(arg[len(keyword):])
    if m is None:
        return None, None
    return m.group(1), m.group(2).split()


def _opt_names(opts):
    return [o.split("=", 1)[0].upper() for o in opts]


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with recording, scripted replies and switchable
    extensions."""

    def __init__(self, sink, handler, **kwargs):
        self.sink = sink
        self.rec = None
        self.txn = None
        super().__init__(handler, **kwargs)

    # connection bookkeeping

    def connection_made(self, transport):
        starttls = self._original_transport is not None
        super().connection_made(transport)
        if starttls:
            if self.rec is not None:
                self.sink._update(self.rec, tls=True)
        else:
            self.rec = self.sink._new_conn(self.session.peer)

    def connection_lost(self, error):
        if self.rec is not None:
            self.sink._conn_closed(self.rec)
        super().connection_lost(error)

    async def _handle_client(self):
        act = self.sink._take("greeting")
        if act == "hang":
            await asyncio.sleep(3600)
            return
        if act == "close":
            self.transport.close()
            return
        if act is not None and not act.startswith("2"):
            await self.push(act.replace("\n", "\r\n"))
            self.transport.close()
            return
        await super()._handle_client()

    # helpers

    def _cmd(self, verb, arg):
        self.sink._command(self.rec, verb + (" " + arg if arg else ""))

    async def _act(self, *keys):
        """Apply a scripted value; returns None (not scripted), True (handled
        completely) or the reply text to use."""
        act = None
        for k in keys:
            act = self.sink._take(k)
            if act is not None:
                break
        if act is None:
            return None
        if act == "hang":
            await asyncio.sleep(3600)
            return True
        if act == "close":
            self.transport.close()
            return True
        return act.replace("\n", "\r\n")

    def _tls_on(self):
        return self._tls_protocol is not None

    # commands

    async def smtp_EHLO(self, hostname):
        self._cmd("EHLO", hostname)
        self.sink._update(self.rec, ehlo=hostname)
        act = await self._act("ehlo")
        if act is True:
            return
        if act is not None:
            await self.push(act)
            return
        await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname):
        self._cmd("HELO", hostname)
        self.sink._update(self.rec, helo=hostname)
        act = await self._act("helo")
        if act is True:
            return
        if act is not None:
            await self.push(act)
            if act.startswith("2"):
                self.session.host_name = hostname
                self.session.extended_smtp = False
            return
        await super().smtp_HELO(hostname)

    async def smtp_STARTTLS(self, arg):
        self._cmd("STARTTLS", arg)
        act = await self._act("starttls")
        if act is True:
            return
        if act is not None:
            await self.push(act)
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_RSET(self, arg):
        self._cmd("RSET", arg)
        self.txn = None
        act = await self._act("rset")
        if act is True:
            return
        if act is not None:
            self._set_rset_state()
            await self.push(act)
            return
        await super().smtp_RSET(arg)

    async def smtp_NOOP(self, arg):
        self._cmd("NOOP", arg)
        await super().smtp_NOOP(arg)

    async def smtp_QUIT(self, arg):
        self._cmd("QUIT", arg)
        await super().smtp_QUIT(arg)

    async def smtp_MAIL(self, arg):
        self._cmd("MAIL", arg)
        pipelined = len(self._reader._buffer) > 0
        if not self.session.host_name:
            await self.push("503 5.5.1 send EHLO first")
            return
        addr, opts = _parse_path(arg, "FROM:")
        if addr is None:
            await self.push("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 nested MAIL command")
            return
        act = await self._act("mail:" + addr, "mail")
        if act is True:
            return
        sink = self.sink
        allowed = {"SIZE"}
        if sink.eightbitmime:
            allowed.add("BODY")
        if sink.dsn:
            allowed |= {"RET", "ENVID"}
        if sink.smtputf8:
            allowed.add("SMTPUTF8")
        if not self.session.extended_smtp and opts:
            await self.push("501 5.5.4 no parameters after HELO")
            return
        bad = [o for o in _opt_names(opts) if o not in allowed]
        if bad:
            await self.push(f"555 5.5.4 {bad[0]} not recognized")
            return
        for o in opts:
            k, _, v = o.partition("=")
            if k.upper() == "SIZE" and sink.size and v.isdigit() and int(v) > sink.size:
                await self.push("552 5.3.4 message size exceeds fixed maximum")
                return
            if k.upper() == "BODY" and v.upper() not in ("7BIT", "8BITMIME"):
                await self.push("501 5.5.4 BODY is 7BIT or 8BITMIME")
                return
        if act is not None and not act.startswith("2"):
            await self.push(act)
            return
        self.envelope.mail_from = addr
        self.envelope.mail_options.extend(opts)
        self.txn = sink._new_txn(self.rec, addr, opts, self._tls_on(), pipelined)
        await self.push(act or "250 2.1.0 ok")

    async def smtp_RCPT(self, arg):
        self._cmd("RCPT", arg)
        if self.envelope.mail_from is None or self.txn is None:
            await self.push("503 5.5.1 need MAIL command")
            return
        addr, opts = _parse_path(arg, "TO:")
        if not addr:
            await self.push("501 5.5.4 syntax: RCPT TO:<address>")
            return
        act = await self._act("rcpt:" + addr, "rcpt")
        if act is True:
            return
        allowed = {"NOTIFY", "ORCPT"} if self.sink.dsn else set()
        bad = [o for o in _opt_names(opts) if o not in allowed]
        if bad:
            reply = f"555 5.5.4 {bad[0]} not recognized"
        else:
            reply = act or "250 2.1.5 ok"
        if reply.startswith("2"):
            self.envelope.rcpt_tos.append(addr)
            self.envelope.rcpt_options.extend(opts)
        self.sink._add_rcpt(self.txn, addr, opts, reply)
        await self.push(reply)

    async def smtp_DATA(self, arg):
        self._cmd("DATA", arg)
        act = await self._act("data")
        if act is True:
            return
        if act is not None and not act.startswith("3"):
            await self.push(act)
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        sink = self.sink
        out = [r for r in responses
               if not r[4:].upper().startswith(("8BITMIME", "AUTH", "HELP",
                                                "SMTPUTF8"))]
        if sink.pipelining:
            out.append("250-PIPELINING")
        if sink.eightbitmime:
            out.append("250-8BITMIME")
        if sink.dsn:
            out.append("250-DSN")
        if sink.enhanced:
            out.append("250-ENHANCEDSTATUSCODES")
        if sink.smtputf8:
            out.append("250-SMTPUTF8")
        out.append("250 HELP")
        if len(out) == 1:
            out = ["250 " + out[0][4:]]
        return out

    async def handle_DATA(self, server, session, envelope):
        act = await server._act("message")
        if act is True:
            # "hang" returned after a very long time, "close" dropped it
            return "421 4.4.2 closing"
        reply = act or _DEFAULT_FINAL
        if server.txn is not None:
            self.sink._finish_txn(server.txn, bytes(envelope.original_content),
                                  reply)
            server.txn = None
        return reply


class _Controller(Controller):
    """Controller on a socket bound before start (port 0: a free port)."""

    def __init__(self, sink, handler, port=0, **kwargs):
        self.sink = sink
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        super().__init__(handler, hostname="127.0.0.1",
                         port=self._sock.getsockname()[1], **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock,
                                       ssl=self.ssl_context)

    def factory(self):
        return _SinkSMTP(self.sink, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        # aiosmtpd connects once to make sure factory() works; that
        # connection would use up scripted greetings and count as a
        # client, and our factory cannot fail: skip it.
        self.smtpd = self.sink
        self._factory_invoked.set()


class Sink:
    """A scriptable SMTP sink on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, script=None, *, pipelining=True, eightbitmime=True,
                 dsn=True, enhanced=True, smtputf8=True, size=2**25, tls=None,
                 require_tls=False, hostname="sink.test", on_change=None,
                 port=0):
        self.script = dict(script or {})
        self.pipelining = pipelining
        self.eightbitmime = eightbitmime
        self.dsn = dsn
        self.enhanced = enhanced
        self.smtputf8 = smtputf8
        self.size = size
        self.tls = tls
        self.require_tls = require_tls
        self.hostname = hostname
        self.on_change = on_change
        self._lock = threading.Condition()
        self._conns = []
        self._txns = []
        self._open = 0
        self.max_open = 0
        self._tmp = None
        self._controller = None
        self.port = port or None
        self._want_port = port

    # life cycle

    def start(self):
        kwargs = {"server_hostname": self.hostname, "enable_SMTPUTF8": True,
                  "data_size_limit": self.size or None, "timeout": 600}
        if self.tls:
            self._tmp = tempfile.mkdtemp(prefix="smtpsink-")
            cert, key = make_cert(self._tmp)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if self.tls == "broken":
                # our clients speak TLS 1.2+: a 1.0-only server never agrees
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                    ctx.maximum_version = ssl.TLSVersion.TLSv1
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = self.require_tls
        self._controller = _Controller(self, _Handler(self),
                                       port=self._want_port, **kwargs)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp:
            for f in os.listdir(self._tmp):
                os.unlink(os.path.join(self._tmp, f))
            os.rmdir(self._tmp)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def host_port(self):
        return f"127.0.0.1:{self.port}"

    # the script

    def set(self, key, value):
        """Change one script entry while the sink runs."""
        with self._lock:
            if value is None:
                self.script.pop(key, None)
            else:
                self.script[key] = value

    def _take(self, key):
        with self._lock:
            v = self.script.get(key)
            if isinstance(v, list):
                if not v:
                    return None
                return v.pop(0)
            return v

    # records (the sink's thread writes, tests read)

    def _changed(self):
        self._lock.notify_all()
        if self.on_change:
            self.on_change(self)

    def _new_conn(self, peer):
        with self._lock:
            rec = {"id": len(self._conns) + 1,
                   "peer": f"{peer[0]}:{peer[1]}" if peer else None,
                   "ehlo": None, "helo": None, "tls": False, "commands": [],
                   "open": True}
            self._conns.append(rec)
            self._open += 1
            self.max_open = max(self.max_open, self._open)
            self._changed()
            return rec

    def _conn_closed(self, rec):
        with self._lock:
            if rec["open"]:
                rec["open"] = False
                self._open -= 1
                self._changed()

    def _update(self, rec, **kw):
        with self._lock:
            rec.update(kw)
            self._changed()

    def _command(self, rec, line):
        with self._lock:
            rec["commands"].append(line)
            self._changed()

    def _new_txn(self, rec, mail_from, opts, tls, pipelined):
        with self._lock:
            txn = {"conn": rec["id"], "mail_from": mail_from,
                   "mail_options": list(opts), "rcpts": [], "data": None,
                   "reply": None, "tls": tls, "pipelined": pipelined}
            return txn

    def _add_rcpt(self, txn, addr, opts, reply):
        with self._lock:
            txn["rcpts"].append({"addr": addr, "options": list(opts),
                                 "reply": reply})

    def _finish_txn(self, txn, data, reply):
        with self._lock:
            txn["data"] = data
            txn["reply"] = reply
            txn["id"] = len(self._txns) + 1
            self._txns.append(txn)
            self._changed()

    # what tests look at

    @property
    def sessions(self):
        """Every connection that sent at least one command."""
        with self._lock:
            return [dict(c, commands=list(c["commands"]))
                    for c in self._conns if c["commands"]]

    @property
    def connections(self):
        """Number of connections that sent at least one command."""
        return len(self.sessions)

    @property
    def accepted(self):
        """Number of connections accepted, with or without commands (a
        client that hears a 421 greeting sends none)."""
        with self._lock:
            return len(self._conns)

    @property
    def transactions(self):
        """Every transaction that got its message (DATA ended)."""
        with self._lock:
            return [dict(t) for t in self._txns]

    def wait_transactions(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._txns) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"sink: {len(self._txns)} of {n} transactions after "
                        f"{timeout}s; connections: {self._conns}")
                self._lock.wait(left)
            return [dict(t) for t in self._txns]

    def wait_for(self, cond, timeout=20.0, what="sink condition"):
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                v = cond(self)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}")
                self._lock.wait(min(left, 0.1))

    def snapshot(self, data_dir=None):
        """The record as JSON-able data; message bytes go to files in data_dir
        (data-N.eml) when given."""
        with self._lock:
            txns = []
            for t in self._txns:
                d = dict(t)
                data = d.pop("data")
                d["data_len"] = len(data)
                if data_dir is not None:
                    name = f"data-{t['id']}.eml"
                    path = os.path.join(data_dir, name)
                    if not os.path.exists(path):
                        with open(path + ".tmp", "wb") as f:
                            f.write(data)
                        os.rename(path + ".tmp", path)
                    d["data_file"] = name
                txns.append(d)
            return {"connections": [dict(c) for c in self._conns if c["commands"]],
                    "transactions": txns, "max_open": self.max_open}


def _write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.rename(path + ".tmp", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--script", default="{}")
    p.add_argument("--tls", choices=["starttls", "broken"])
    p.add_argument("--require-tls", action="store_true")
    p.add_argument("--size", type=int, default=2**25)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--no-dsn", action="store_true")
    p.add_argument("--no-enhanced", action="store_true")
    p.add_argument("--no-smtputf8", action="store_true")
    a = p.parse_args(argv)
    if not a.verbose:
        # aiosmtpd logs a traceback for every failed TLS handshake
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    record = os.path.join(a.dir, "record.json")

    def dump(sink):
        _write_json(record, sink.snapshot(a.dir))

    sink = Sink(json.loads(a.script), pipelining=not a.no_pipelining,
                eightbitmime=not a.no_8bitmime, dsn=not a.no_dsn,
                enhanced=not a.no_enhanced, smtputf8=not a.no_smtputf8,
                size=a.size, tls=a.tls, require_tls=a.require_tls,
                on_change=dump)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sink.start()
    dump(sink)
    with open(os.path.join(a.dir, "port.tmp"), "w") as f:
        f.write(f"{sink.port}\n")
    os.rename(os.path.join(a.dir, "port.tmp"), os.path.join(a.dir, "port"))
    parent = os.getppid()
    while not stop.wait(0.2):
        if os.getppid() != parent:
            break       # the test died without stopping us
    sink.stop()
    dump(sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
