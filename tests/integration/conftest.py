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


def prog(name):
    """Path of a program built into build/src."""
    return os.path.join(BUILD, "src", name)


def test_program(name):
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
