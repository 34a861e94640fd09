"""The queue: file format on disk, restart, corrupt files, the queue limit,
foldering, and the SIGTERM drain, against the real server."""
import grp
import os
import re
import stat

import pytest

from conftest import (BASE_CONFIG, DAEMON, NOBODY, async_config, install_app,
                      message, nobody_dir, wait_for)

# blocks until OUT/go exists, then records the delivery
GATE = r"""
    #!/bin/sh
    cat > /dev/null
    touch "$1/started.$DELIVERY_ID"
    while [ ! -e "$1/go" ]; do sleep 0.02; done
    echo "$ORIGINAL_RECIPIENT $DELIVERY_ID" >> "$1/done"
"""


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def gated(server_factory, out, config=BASE_CONFIG, router=None):
    s = server_factory(config=config,
                       router=router or f'<*> = "gate {out}"@pipe\n')
    install_app(s.base, "gate", GATE)
    return s


def release(out):
    open(os.path.join(out, "go"), "w").close()


def done_lines(out):
    p = os.path.join(out, "done")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return f.read().split("\n")[:-1]


def test_queue_file_format_owner_and_mode(server_factory, out):
    s = gated(server_factory, out).start()
    s.submit("From: joe@remote.example\nTo: a@test.example, b@test.example\n"
             "Subject: q\n\nbody\n")
    (path,) = wait_for(s.queue_files, what="a queue file")
    st = os.stat(path)
    # only the daemon user reads the queue (docs/SECURITY.md)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == DAEMON.pw_uid and st.st_gid == DAEMON.pw_gid
    qdir = os.stat(os.path.join(s.base, "Queue"))
    assert stat.S_IMODE(qdir.st_mode) == 0o700
    assert qdir.st_uid == DAEMON.pw_uid
    with open(path, "rb") as f:
        data = f.read()
    env, msg = data.split(b"\n\n", 1)
    lines = env.decode().split("\n")
    assert lines[0] == "mailpipe-queue 1"
    assert lines[-1] == "end"
    keys = [l.split(" ", 1)[0] for l in lines]
    for k in ("uid", "tag", "submitted", "from", "user", "trusted", "size"):
        assert keys.count(k) == 1, k
    assert "tag PIPE" in lines and "from <joe@remote.example>" in lines
    rcpts = [l for l in lines if l.startswith("rcpt ")]
    assert rcpts == ["rcpt P 0 - <a@test.example>", "rcpt P 0 - <b@test.example>"]
    assert f"size {len(msg)}" in lines
    assert msg.endswith(b"\n\nbody\n")
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    release(out)
    s.wait_queue_empty()


def test_final_states_are_recorded_and_never_rerun(server_factory, out):
    # a@ is delivered at once, b@ waits at the gate
    router = (f'<a> = "record {out}"@pipe\n'
              f'<b> = "gate {out}"@pipe\n')
    s = gated(server_factory, out, router=router)
    install_app(s.base, "record", "#!/bin/sh\ncat >/dev/null\n"
                "echo \"$ORIGINAL_RECIPIENT\" >> \"$1/record\"\n")
    s.start()
    s.submit(message(to="a@test.example, b@test.example"))
    s.wait_deliveries(1, rcpt="a@test.example", result="delivered")
    (path,) = s.queue_files()

    def a_marked():
        with open(path) as f:
            return "rcpt D 0 - <a@test.example>" in f.read()
    wait_for(a_marked, what="a@ marked delivered in the queue file")
    s.kill()                      # b@'s program is still running
    release(out)
    s.start()
    s.wait_deliveries(1, rcpt="b@test.example", result="delivered")
    s.wait_queue_empty()
    with open(os.path.join(out, "record")) as f:
        assert f.read().split() == ["a@test.example"]


def test_restart_resubmits_and_removes_stray_tmp(server_factory, out):
    s = gated(server_factory, out).start()
    s.submit(message(to="a@test.example"))
    (path,) = wait_for(s.queue_files, what="queue file")
    s.kill()
    stray = os.path.join(os.path.dirname(path), "9999999999999999.tmp")
    with open(stray, "w") as f:
        f.write("half written")
    release(out)
    s.start()
    s.wait_deliveries(1, result="delivered")
    assert not os.path.exists(stray)
    s.wait_queue_empty()


CORRUPT = {
    "bad-version": b"mailpipe-queue 2\nend\n\nx\n",
    "no-end": b"mailpipe-queue 1\nuid 0123456789abcdef0123456789abcdef\n\nx\n",
    "unknown-key": (b"mailpipe-queue 1\nuid 0123456789abcdef0123456789abcdef\n"
                    b"tag PIPE\nsubmitted 1\nfrom <>\ntrusted yes\nsize 2\n"
                    b"color red\nrcpt P 0 - <a@test.example>\nend\n\nx\n"),
    "truncated": (b"mailpipe-queue 1\nuid 0123456789abcdef0123456789abcdef\n"
                  b"tag PIPE\nsubmitted 1\nfrom <>\ntrusted yes\nsize 999\n"
                  b"rcpt P 0 - <a@test.example>\nend\n\nx\n"),
    "nul-in-value": (b"mailpipe-queue 1\nuid 0123456789abcdef0123456789abcdef\n"
                     b"tag PIPE\nsubmitted 1\nfrom <a\0b@test.example>\n"
                     b"trusted yes\nsize 2\nrcpt P 0 - <a@test.example>\nend\n\nx\n"),
}


def test_corrupt_files_are_quarantined_and_never_deleted(server_factory, out):
    s = gated(server_factory, out)
    q = os.path.join(s.base, "Queue")
    os.makedirs(os.path.join(q, "07"), exist_ok=True)
    names = {}
    for i, (what, data) in enumerate(sorted(CORRUPT.items())):
        name = f"100000000000000{i}.msg"
        where = os.path.join(q, "07" if i % 2 else "", name)
        with open(where, "wb") as f:
            f.write(data)
        names[name] = data
    release(out)
    s.start()
    s.submit(message(to="alive@test.example"))
    s.wait_deliveries(1, result="delivered")
    corrupt = os.path.join(q, "corrupt")
    assert sorted(os.listdir(corrupt)) == sorted(names)
    for name, data in names.items():
        with open(os.path.join(corrupt, name), "rb") as f:
            assert f.read() == data
    assert len(re.findall(r"QUEUE failures: .*corrupt", s.log())) >= len(names)
    # and a new message got an ID above all of them
    line = [l for l in s.log().splitlines() if "Submitted/" in l and " queued id=" in l][0]
    assert int(line.split("id=")[1].split()[0]) > 1000000000000004


def test_queue_limit_keeps_submitted_files_and_loses_nothing(server_factory, out):
    cfg = BASE_CONFIG.replace("retry = 1s", "retry = 1s\nlimit = 2")
    s = gated(server_factory, out, config=cfg).start()
    subs = [s.submit(message(to=f"r{i}@test.example"), name=f"m{i}") for i in range(5)]
    wait_for(lambda: len(s.queue_files()) == 2, what="two queued")
    s.wait_log(r"queue limit reached")
    # a .sub goes only after its queue file's rename is durable, a moment
    # after the file shows in the directory; the other three must stay
    wait_for(lambda: sum(os.path.exists(p) for p in subs) == 3,
             what="the two queued .sub files removed, three kept")
    release(out)
    wait_for(lambda: len(done_lines(out)) == 5, timeout=30, what="all five")
    assert sorted(l.split()[0] for l in done_lines(out)) == \
        [f"r{i}@test.example" for i in range(5)]
    s.wait_queue_empty()


@pytest.mark.parametrize("setting,expect", [("0", r"Queue/\d{16}\.msg$"),
                                             ("10", r"Queue/0\d/\d{16}\.msg$"),
                                             ("100", r"Queue/\d\d/\d{16}\.msg$"),
                                             ("auto", r"Queue/\d{16}\.msg$")])
def test_foldering(server_factory, out, setting, expect):
    cfg = BASE_CONFIG.replace("retry = 1s", f"retry = 1s\nfoldering = {setting}")
    s = gated(server_factory, out, config=cfg).start()
    for i in range(12):
        s.submit(message(to=f"f{i}@test.example"))
    files = wait_for(lambda: (lambda f: f if len(f) == 12 else None)(s.queue_files()),
                     what="12 queue files")
    for f in files:
        assert re.search(expect, f), f
    if setting == "10":
        assert all(int(f[-6:-4]) % 10 == int(os.path.basename(os.path.dirname(f)))
                   for f in files)
    release(out)
    s.wait_queue_empty()


def test_restart_scans_every_subfolder_whatever_the_setting(server_factory, out):
    cfg10 = BASE_CONFIG.replace("retry = 1s", "retry = 1s\nfoldering = 100")
    s = gated(server_factory, out, config=cfg10).start()
    for i in range(6):
        s.submit(message(to=f"s{i}@test.example"))
    wait_for(lambda: len(s.queue_files()) == 6, what="6 queued")
    s.kill()
    with open(os.path.join(s.base, "mailpipe.conf"), "w") as f:
        f.write(BASE_CONFIG.replace("retry = 1s", "retry = 1s\nfoldering = 0"))
    release(out)
    s.start()
    wait_for(lambda: len(done_lines(out)) >= 6, what="all delivered")
    s.wait_queue_empty()


def test_sigterm_drains_running_deliveries(server_factory, out):
    s = gated(server_factory, out).start()
    s.submit(message(to="a@test.example"))
    wait_for(lambda: [f for f in os.listdir(out) if f.startswith("started.")],
             what="the program to run")
    assert os.path.exists(os.path.join(s.base, "mailpiped.pid"))
    import signal as sig
    s.proc.send_signal(sig.SIGTERM)
    s.wait_log(r"waiting for 1 running deliveries")
    assert s.proc.poll() is None
    release(out)
    assert s.proc.wait(20) == 0
    s.proc = None
    s.logfile.close()
    assert [l.split()[0] for l in done_lines(out)] == ["a@test.example"]
    assert s.queue_files() == []
    assert not os.path.exists(os.path.join(s.base, "mailpiped.pid"))


def test_two_servers_cannot_share_a_base(server_factory, out):
    s = gated(server_factory, out).start()
    from conftest import prog, run
    r = run([prog("mailpiped"), "--base", s.base], timeout=10)
    assert r.returncode == 75
    assert b"another mailpiped" in r.stderr
    release(out)


def test_unknown_user_and_null_and_error_targets(server_factory, out):
    router = ('<gone> = null\n'
              '<closed> = error\n'
              f'<x> = "gate {out}"@pipe\n')
    # routing failures of local submission fail in the queue only when
    # Enqueue Asynchronously applies to it (else: test_enqueue_async.py)
    s = gated(server_factory, out, router=router,
              config=async_config("authenticated"))
    release(out)
    s.start()
    s.submit(message(to="gone@test.example, closed@test.example, "
                        "who@test.example, far@elsewhere.example"))
    got = {d["rcpt"]: d for d in s.wait_deliveries(4)}
    assert got["gone@test.example"]["result"] == "delivered"
    assert got["closed@test.example"]["result"] == "failed"
    assert got["who@test.example"]["result"] == "failed"
    assert "unknown user" in got["who@test.example"]["reason"]
    assert got["far@elsewhere.example"]["result"] == "failed"
    assert got["far@elsewhere.example"]["reason"].startswith("554 5.4.4")
    s.wait_queue_empty()


def test_sighup_reloads_the_router_and_keeps_it_on_errors(server_factory, out):
    import signal as sig
    s = server_factory(router="<x> = null\n",
                       config=async_config("authenticated")).start()
    s.submit(message(to="x@test.example"), name="first")
    assert s.wait_deliveries(1)[0]["result"] == "delivered"
    with open(os.path.join(s.base, "router"), "w") as f:
        f.write("<x> = error\n<y> = null\n")
    s.proc.send_signal(sig.SIGHUP)
    s.wait_log(r"SIGHUP: router \(2 records\)")
    s.submit(message(to="x@test.example"), name="second")
    got = s.wait_deliveries(2)
    assert got[1]["result"] == "failed"
    # a broken router is refused; the one in use stays
    with open(os.path.join(s.base, "router"), "w") as f:
        f.write("<x = null\n")
    s.proc.send_signal(sig.SIGHUP)
    s.wait_log(r"SIGHUP: configuration not reloaded: .*router:1:")
    s.submit(message(to="y@test.example"), name="third")
    got = s.wait_deliveries(3)
    assert got[2]["rcpt"] == "y@test.example" and got[2]["result"] == "delivered"
    s.wait_queue_empty()


def test_a_sub_already_queued_before_a_crash_is_not_queued_again(server_factory, out):
    # the state after a crash between the commit and the .sub's removal
    s = server_factory(router="<*> = null\n")
    sub = os.path.join(s.base, "Submitted")
    os.makedirs(sub)
    path = os.path.join(sub, "crash.sub")
    with open(path, "w") as f:
        f.write(message(to="once@test.example"))
    st = os.stat(path)
    os.makedirs(os.path.join(s.base, "Queue"))
    body = b"Subject: test\n\nhello\n"
    env = (f"mailpipe-queue 1\nuid {'d' * 32}\ntag PIPE\nsubmitted 1763892300\n"
           f"from <sender@remote.example>\nuser 0\ntrusted yes\n"
           f"source Submitted/crash.sub {st.st_dev}:{st.st_ino}\n"
           f"size {len(body)}\nrcpt P 0 - <once@test.example>\nend\n\n").encode()
    with open(os.path.join(s.base, "Queue", "1763892300000001.msg"), "wb") as f:
        f.write(env + body)
    s.start()
    s.wait_deliveries(1)
    s.wait_log(r"Submitted/crash\.sub was already queued before a restart; removed")
    assert not os.path.exists(path)
    s.wait_queue_empty()
    assert len([d for d in s.deliveries() if d["rcpt"] == "once@test.example"]) == 1
