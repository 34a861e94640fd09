"""Shared fixtures for the integration tests: real programs, temp base dirs.

Tests run as root (the project's machines do); anything that must be
exercised as an unprivileged user runs as `nobody`.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("MAILPIPE_SOURCE") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("MAILPIPE_BUILD") or os.path.join(SOURCE, "build")

NOBODY = pwd.getpwnam("nobody")
# [server] daemon-user's default: owns Queue/ and Submitted/ (SECURITY.md)
DAEMON = pwd.getpwnam("mailpiped")


def prog(name):
    """Path of a program built into build/src."""
    return os.path.join(BUILD, "src", name)


def built_program(name):
    """Path of a helper program built into build/tests/programs."""
    return os.path.join(BUILD, "tests", "programs", name)


def wait_for(cond, timeout=20.0, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_tmpdir(prefix="mp-"):
    """A temp dir that an unprivileged user can traverse (0755)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def tmpdir755():
    d = make_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def base(tmpdir755):
    """An empty base directory (0755) inside a traversable temp dir."""
    b = os.path.join(tmpdir755, "base")
    os.mkdir(b, 0o755)
    return b


def as_user(pw):
    """preexec_fn that switches a child to the given passwd entry."""
    def switch():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return switch


def run(args, input=None, env=None, user=None, timeout=30, cwd=None):
    """Run a program; returns CompletedProcess with bytes stdout/stderr."""
    full_env = {"PATH": "/usr/bin:/bin"}
    if env:
        full_env.update(env)
    return subprocess.run(args, input=input, env=full_env, cwd=cwd,
                          capture_output=True, timeout=timeout,
                          preexec_fn=as_user(user) if user else None)


# ---------------------------------------------------------------------------
# The server under test

import re
import signal
import stat
import textwrap

KV_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

BASE_CONFIG = """\
[server]
user = nobody
hostname = mx.test.example

[router]
local-domains = test.example, other.example

[pipe]
app-dir = apps
time-limit = 20s
processors = 4

[queue]
retry = 1s

[submitted]
scan-interval = 1s

[foreign-queue]
scan-interval = 1s

[smtp]
listen =

[monitor]
http-listen =

[log]
level = all
"""


def unquote(v):
    if v.startswith('"') and v.endswith('"') and len(v) >= 2:
        out, i, s = [], 0, v[1:-1]
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s):
                n = s[i + 1]
                if n == "x" and i + 3 < len(s):
                    out.append(chr(int(s[i + 2:i + 4], 16)))
                    i += 4
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r"}.get(n, n))
                i += 2
                continue
            out.append(c)
            i += 1
        return "".join(out)
    return v


def parse_kv(line):
    """The key=value pairs of a log line, values unquoted."""
    return {k: unquote(v) for k, v in KV_RE.findall(line)}


def install_app(base, name, text, mode=0o755):
    """Write a delivery program into BASE/apps (root-owned, 0755)."""
    apps = os.path.join(base, "apps")
    os.makedirs(apps, mode=0o755, exist_ok=True)
    path = os.path.join(apps, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip())
    os.chmod(path, mode)
    return path


def copy_app(base, name, src):
    """Copy a built program into BASE/apps."""
    apps = os.path.join(base, "apps")
    os.makedirs(apps, mode=0o755, exist_ok=True)
    dst = os.path.join(apps, name)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)
    return dst


def chown_tree(path, pw):
    """Give path and everything below it to the user pw."""
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, f) for f in files]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)


def nobody_dir(path):
    """A directory the delivery programs (run as nobody) can write."""
    os.makedirs(path, exist_ok=True)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chmod(path, 0o700)
    return path


class Server:
    """A real mailpiped on a temp base directory."""

    def __init__(self, base, config=BASE_CONFIG, router=""):
        self.base = base
        self.proc = None
        self.logpath = os.path.join(os.path.dirname(base), "server.log")
        self.logoff = 0
        if config is not None:
            with open(os.path.join(base, "mailpipe.conf"), "w") as f:
                f.write(config)
        with open(os.path.join(base, "router"), "w") as f:
            f.write(textwrap.dedent(router))
        os.makedirs(os.path.join(base, "apps"), mode=0o755, exist_ok=True)

    def start(self, wait=True, args=(), user=None):
        """Start mailpiped; with user (a passwd entry), as that user (the
        development mode: every part runs as that user)."""
        self.logfile = open(self.logpath, "ab")
        self.logoff = os.path.getsize(self.logpath)
        self.proc = subprocess.Popen(
            [prog("mailpiped"), "--base", self.base, *args],
            stdout=self.logfile, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", **_sanitizer_env()},
            preexec_fn=as_user(user) if user else None)
        if wait:
            self.wait_log(r"SYSTEM major: ready", since_start=True)
        return self

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_since_start(self):
        with open(self.logpath, "rb") as f:
            f.seek(self.logoff)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=20, since_start=False, count=1):
        rx = re.compile(pattern)

        def found():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"mailpiped exited ({self.proc.returncode}) while "
                    f"waiting for {pattern!r}:\n{self.log()[-3000:]}")
            text = self.log_since_start() if since_start else self.log()
            hits = rx.findall(text)
            return hits if len(hits) >= count else None
        return wait_for(found, timeout, what=f"log line {pattern!r}")

    def deliveries(self):
        """Every delivery attempt line, parsed."""
        return [parse_kv(l) for l in self.log().splitlines()
                if " delivery " in l and "result=" in l]

    def wait_deliveries(self, n, timeout=30, **match):
        def ok():
            got = [d for d in self.deliveries()
                   if all(d.get(k) == v for k, v in match.items())]
            return got if len(got) >= n else None
        try:
            return wait_for(ok, timeout, what=f"{n} deliveries {match}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- server log ---\n"
                                 f"{self.log()[-4000:]}") from None

    def submit(self, message, name=None, owner=None, mode=0o644):
        """Drop a .sub file into Submitted (as root or owner). The daemon
        user reads it: readable by others (Submitted/ is closed to them),
        as sendmail writes it (0444)."""
        sub = os.path.join(self.base, "Submitted")
        os.makedirs(sub, exist_ok=True)
        name = name or f"t{time.monotonic_ns()}"
        tmp = os.path.join(sub, name + ".tmp")
        data = message.encode() if isinstance(message, str) else message
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner.pw_uid, owner.pw_gid)
        os.rename(tmp, os.path.join(sub, name + ".sub"))
        return os.path.join(sub, name + ".sub")

    def queue_files(self):
        out = []
        for root, dirs, files in os.walk(os.path.join(self.base, "Queue")):
            if os.path.basename(root) == "corrupt":
                continue
            out += [os.path.join(root, f) for f in files if f.endswith(".msg")]
        return sorted(out)

    def wait_queue_empty(self, timeout=30):
        wait_for(lambda: not self.queue_files(), timeout, what="empty queue")

    def stop(self, timeout=30, expect=0):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        self.logfile.close()
        assert code == expect, f"mailpiped exit {code}:\n{self.log()[-3000:]}"
        if expect == 0:
            check_sanitizer_log(self.log_since_start())

    def kill(self):
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        self.logfile.close()


def _sanitizer_env():
    env = {}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def check_sanitizer_log(text):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:"):
        assert marker not in text, f"sanitizer report:\n{text[-5000:]}"


def message(to="demo@test.example", frm="sender@remote.example",
            subject="test", body="hello\n", extra=""):
    return (f"From: {frm}\nTo: {to}\nSubject: {subject}\n{extra}\n{body}")


@pytest.fixture
def server_factory(base):
    servers = []

    def make(config=BASE_CONFIG, router=""):
        s = Server(base, config, router)
        servers.append(s)
        return s
    yield make
    for s in servers:
        if s.proc is not None:
            try:
                s.stop()
            except Exception:
                s.kill()
                raise


# ---------------------------------------------------------------------------
# SMTP listener helpers (test_smtp.py, test_transport.py)

import socket


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port that is free now (bind port 0 and let it go)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def smtp_config(listen, smtp="", extra="", config=BASE_CONFIG):
    """BASE_CONFIG with [smtp] listen set and more [smtp] keys / sections."""
    marker = "[smtp]\nlisten =\n"
    assert marker in config
    return config.replace(marker, f"[smtp]\nlisten = {listen}\n{smtp}") + extra


def async_config(value, config=BASE_CONFIG):
    """config with [smtp] enqueue-async = value (e.g. "authenticated": local
    submission queues every recipient and routing failures fail in the
    queue, as the tests of the queue's own failure paths need)."""
    marker = "[smtp]\n"
    assert marker in config
    return config.replace(marker, f"[smtp]\nenqueue-async = {value}\n", 1)


class RawSMTP:
    """A bare SMTP client on a socket: exact bytes out, replies parsed."""

    def __init__(self, port, host="127.0.0.1", family=socket.AF_INET,
                 timeout=20):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, [line texts]) of the next (multi-line) reply."""
        lines = []
        while True:
            line = self._line()
            assert len(line) >= 3 and line[:3].isdigit(), line
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), [l[4:] for l in lines]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def at_eof(self):
        """True once the server has closed (anything else buffered: False)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def queue_leftovers(base):
    """Every .tmp or .msg under Queue/ (outside Queue/corrupt)."""
    out = []
    for root, dirs, files in os.walk(os.path.join(base, "Queue")):
        if os.path.basename(root) == "corrupt":
            continue
        out += [os.path.join(root, f) for f in files
                if f.endswith((".tmp", ".msg"))]
    return sorted(out)
