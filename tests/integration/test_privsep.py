"""Privilege separation (docs/SECURITY.md), checked on the real processes:
the root master, the spawn helper (root, only CAP_KILL/SETGID/SETUID,
judging files as the program user), the daemon (the daemon user, no
capability, no_new_privs, the only one holding client connections), and
programs that try to stop, kill or read the server."""
import os
import signal
import socket
import stat
import subprocess

import pytest

from conftest import (DAEMON, NOBODY, free_port, install_app, message,
                      nobody_dir, prog, smtp_config, wait_for)


def status(pid):
    """/proc/PID/status as a dict of its lines."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children(pid):
    """Pids whose parent is pid."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def parts(s):
    """(helper, daemon) pids of a running server, told apart by uid."""
    def found():
        kids = children(s.proc.pid)
        by_uid = {int(status(k)["Uid"].split()[0]): k for k in kids}
        if 0 in by_uid and DAEMON.pw_uid in by_uid and len(kids) == 2:
            return by_uid[0], by_uid[DAEMON.pw_uid]
        return None
    return wait_for(found, what="the spawn helper and the daemon")


def socket_holders(inode):
    """Pids with a descriptor on socket inode."""
    want = f"socket:[{inode}]"
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                if os.readlink(f"/proc/{d}/fd/{fd}") == want:
                    pids.add(int(d))
        except OSError:
            continue
    return pids


def client_inode(port, local_port):
    """Inode of the server's end of our connection, from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            loc, rem, inode = cols[1], cols[2], int(cols[9])
            if int(loc.split(":")[1], 16) == port and \
                    int(rem.split(":")[1], 16) == local_port:
                return inode
    return None


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def test_processes_users_capabilities(server_factory):
    port = free_port()
    s = server_factory(config=smtp_config(f"127.0.0.1:{port}"))
    s.start()
    master = status(s.proc.pid)
    assert master["Uid"].split() == ["0"] * 4
    helper, daemon = parts(s)
    # the helper: root for switching ids and killing program groups
    # only, and it judges every file as the program user
    h = status(helper)
    assert h["Uid"].split() == ["0", "0", "0", str(NOBODY.pw_uid)]
    assert h["Gid"].split()[3] == str(NOBODY.pw_gid)
    assert int(h["CapEff"], 16) == int(h["CapPrm"], 16) == 0xe0
    assert int(h["CapBnd"], 16) == 0xe0
    # the daemon: its own user, nothing else, no way to gain anything
    d = status(daemon)
    uid = str(DAEMON.pw_uid)
    assert d["Uid"].split() == [uid] * 4
    assert d["Gid"].split() == [str(DAEMON.pw_gid)] * 4
    assert d["Groups"] == ""
    assert int(d["CapEff"], 16) == 0 and int(d["CapPrm"], 16) == 0
    assert int(d["CapInh"], 16) == 0 and int(d["CapAmb"], 16) == 0
    assert d["NoNewPrivs"] == "1"
    # the daemon is the process that speaks SMTP: a client's connection
    # is held by it alone
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        assert c.recv(512).startswith(b"220 ")
        inode = wait_for(lambda: client_inode(port, c.getsockname()[1]),
                         what="the connection in /proc/net/tcp")
        assert socket_holders(inode) == {daemon}
    # the queue is the daemon's alone
    q = os.stat(os.path.join(s.base, "Queue"))
    assert (q.st_uid, stat.S_IMODE(q.st_mode)) == (DAEMON.pw_uid, 0o700)


def test_programs_cannot_signal_the_server(server_factory, out):
    s = server_factory(router='<x> = "attack"@pipe\n')
    # the attacks of the issue, and on every process of this server
    install_app(s.base, "attack", f"""
        #!/bin/sh
        cat >/dev/null
        for sig in KILL STOP TERM; do
            kill -$sig $PPID 2>/dev/null && echo "$sig $PPID" >> {out}/hits
        done
        for p in $(cat {out}/pids); do
            for sig in KILL STOP; do
                kill -$sig $p 2>/dev/null && echo "$sig $p" >> {out}/hits
            done
        done
        echo $PPID >> {out}/tried
        exit 0
    """)
    s.start()
    helper, daemon = parts(s)
    with open(os.path.join(out, "pids"), "w") as f:
        f.write(f"{s.proc.pid} {helper} {daemon}\n")
    os.chmod(os.path.join(out, "pids"), 0o644)
    for i in range(5):
        s.submit(message(to="x@test.example", subject=f"m{i}"))
    got = s.wait_deliveries(5)
    assert [d["result"] for d in got] == ["delivered"] * 5, \
        [d["reason"] for d in got]
    with open(os.path.join(out, "tried")) as f:
        assert {int(p) for p in f.read().split()} == {helper}
    assert not os.path.exists(os.path.join(out, "hits"))
    # nobody was stopped or replaced
    assert parts(s) == (helper, daemon)
    for pid in (s.proc.pid, helper, daemon):
        assert status(pid)["State"][0] in "SR"
    s.wait_queue_empty()


def test_program_cannot_read_another_queue_file(server_factory, out):
    s = server_factory(router='<held> = "held"@pipe\n'
                              '<peek> = "[FILE] peek"@pipe\n')
    # holds its message in the queue until the test lets it go
    install_app(s.base, "held", f"""
        #!/bin/sh
        cat >/dev/null
        while [ ! -e {out}/go ]; do sleep 0.05; done
    """)
    install_app(s.base, "peek", f"""
        #!/bin/sh
        exec 2>/dev/null
        cat "$2" > {out}/own || echo own >> {out}/failed
        ls "$MAILPIPE_QUEUE" > {out}/listing || echo ls >> {out}/denied
        cat "$(cat {out}/target)" > {out}/stolen || echo cat >> {out}/denied
        exit 0
    """.replace("$MAILPIPE_QUEUE", os.path.join(s.base, "Queue")))
    s.start()
    s.submit(message(to="held@test.example", body="secret held body\n"))
    (target,) = wait_for(s.queue_files, what="the held message's file")
    with open(os.path.join(out, "target"), "w") as f:
        f.write(target)
    os.chmod(os.path.join(out, "target"), 0o644)
    s.submit(message(to="peek@test.example", body="peek body\n"))
    d = s.wait_deliveries(1, rcpt="peek@test.example")[0]
    assert d["result"] == "delivered"
    with open(os.path.join(out, "denied")) as f:
        assert f.read().split() == ["ls", "cat"]
    assert os.path.getsize(os.path.join(out, "stolen")) == 0
    # its own message it reads through -f (a private copy, fd 3)
    assert not os.path.exists(os.path.join(out, "failed"))
    with open(os.path.join(out, "own")) as f:
        assert f.read().endswith("\n\npeek body\n")
    open(os.path.join(out, "go"), "w").close()
    s.wait_deliveries(1, rcpt="held@test.example", result="delivered")
    s.wait_queue_empty()


def slow_app(s, out):
    """A program that says it runs, then waits for out/go."""
    install_app(s.base, "slow", f"""
        #!/bin/sh
        cat >/dev/null
        echo $$ >> {out}/started
        while [ ! -e {out}/go ]; do sleep 0.05; done
    """)


def started(out, n):
    """Pids of the first n runs of slow, once there are n."""
    def read():
        try:
            with open(os.path.join(out, "started")) as f:
                pids = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return None
        return pids if len(pids) >= n else None
    return wait_for(read, what=f"{n} runs of the program")


def gone(pid):
    """The process has ended and been reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def start_slow(server_factory, out):
    """A server whose one message's program runs until out/go: the
    server, its helper and daemon pids, and the program's pid."""
    s = server_factory(router='<x> = "slow"@pipe\n')
    slow_app(s, out)
    s.start()
    helper, daemon = parts(s)
    s.submit(message(to="x@test.example"))
    (first,) = started(out, 1)
    return s, helper, daemon, first


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_spawn_helper_lost_is_replaced(server_factory, out, how):
    s, helper, daemon, first = start_slow(server_factory, out)
    os.kill(helper, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    if how == "stop":
        s.wait_log(rf"spawn helper {helper} was stopped \(signal 19\): "
                   r"killing and replacing it")
    s.wait_log(rf"spawn helper {helper} was killed by signal 9: replacing")
    # the running delivery is deferred, never failed; its program died
    # with its helper
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "deferred", d
    assert "spawn helper" in d["reason"]
    wait_for(lambda: gone(first), what="the program to die with its helper")
    new_helper, new_daemon = parts(s)
    assert new_daemon == daemon and new_helper != helper
    # retried through the new helper, and delivered
    open(os.path.join(out, "go"), "w").close()
    s.wait_deliveries(1, result="delivered")
    assert not [d for d in s.deliveries() if d["result"] == "failed"]
    s.submit(message(to="x@test.example"))
    s.wait_deliveries(2, result="delivered")
    s.wait_queue_empty()


def test_daemon_killed_is_restarted(server_factory, out):
    s, helper, daemon, first = start_slow(server_factory, out)
    os.kill(daemon, signal.SIGKILL)
    s.wait_log(rf"daemon {daemon} was killed by signal 9")
    s.wait_log(r"daemon restarted")
    s.wait_log(r"SYSTEM major: ready", count=2)
    # the old helper went with its daemon, and killed the program first
    wait_for(lambda: gone(helper), what="the old helper to go")
    wait_for(lambda: gone(first), what="the old program to go")
    new_helper, new_daemon = parts(s)
    assert new_daemon != daemon
    open(os.path.join(out, "go"), "w").close()
    s.submit(message(to="x@test.example"))
    got = s.wait_deliveries(2, result="delivered")
    assert not [d for d in s.deliveries() if d["result"] == "failed"]
    assert len(got) == 2
    s.wait_queue_empty()


@pytest.mark.parametrize("server, why", [
    ("user = nobody\ndaemon-user = nobody\n",
     "'nobody' is already the user"),
    ("daemon-user = root\n", "the server must not run as root"),
    ("daemon-user = no-such-user-here\n",
     "[server] daemon-user 'no-such-user-here' does not exist"),
])
def test_config_refuses_bad_daemon_user(base, server, why):
    conf = os.path.join(base, "mailpipe.conf")
    with open(conf, "w") as f:
        f.write("[server]\n" + server)
    r = subprocess.run([prog("mailpiped"), "--base", base, "--check-config"],
                       capture_output=True, timeout=30)
    assert r.returncode == 78, r.stderr
    assert why in r.stderr.decode(), r.stderr
    if "exist" not in why:
        assert f"{conf}:" in r.stderr.decode()
