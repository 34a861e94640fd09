"""The PIPE module's rules, one test each, against the real server.

Every test submits real messages through the Submitted folder to real
programs (shell scripts written into the application directory) and reads
the server's delivery log lines and the files the programs wrote.
"""
import os
import stat
import subprocess
import time

import pytest

from conftest import (BASE_CONFIG, NOBODY, async_config, install_app, copy_app,
                      message, nobody_dir, built_program, wait_for)

RECORD = r"""
    #!/bin/sh
    # record OUT [ARGS...]: save argv, environment, stdin and identity
    out=$1
    d="$out/$DELIVERY_ID"
    mkdir -p "$d"
    printf '%s\0' "$@" > "$d/args"
    cat /proc/$$/environ > "$d/environ"
    cat > "$d/stdin"
    id -u > "$d/uid"; id -G > "$d/groups"; umask > "$d/umask"; pwd > "$d/cwd"
    echo done > "$d/done"
"""


def args_of(d):
    """argv[1:] of a run (a script's "$@")."""
    with open(os.path.join(d, "args"), "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def env_of(d):
    with open(os.path.join(d, "environ"), "rb") as f:
        return dict(kv.decode().split("=", 1)
                    for kv in f.read().split(b"\0") if kv)


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def runs(out):
    """Delivery directories written by the record program."""
    return sorted(os.path.join(out, d) for d in os.listdir(out)
                  if os.path.exists(os.path.join(out, d, "done")))


def start(server_factory, router, config=BASE_CONFIG):
    s = server_factory(config=config, router=router)
    install_app(s.base, "record", RECORD)
    return s


def test_exit_zero_delivers_and_removes_the_queue_file(server_factory, out):
    s = start(server_factory, f'<rec> = "record {out}"@pipe\n').start()
    s.submit(message(to="rec@test.example", body="line one\nline two\n"))
    d = s.wait_deliveries(1, rcpt="rec@test.example")[0]
    assert d["result"] == "delivered"
    assert d["module"] == "PIPE"
    assert d["reason"].startswith("250 2.0.0")
    s.wait_queue_empty()
    (run,) = runs(out)
    body = read(os.path.join(run, "stdin"))
    assert body.endswith("\n\nline one\nline two\n")
    assert "Subject: test\n" in body
    assert body.startswith("Received: from local user 0\n")


@pytest.mark.parametrize("code", [71, 74, 75, 79])
def test_temporary_exit_status_defers_then_retries(server_factory, out, code):
    s = server_factory(router=f'<flaky> = "flaky {out}"@pipe\n')
    install_app(s.base, "flaky", f"""
        #!/bin/sh
        cat > /dev/null
        f="$1/$DELIVERY_ID.tries"
        echo x >> "$f"
        [ "$(wc -l < "$f")" -ge 2 ] && exit 0
        exit {code}
    """)
    s.start()
    s.submit(message(to="flaky@test.example"))
    first = s.wait_deliveries(1, result="deferred")[0]
    assert first["reason"] == f"451 4.3.0 pipe transport gave exit status {code}"
    ok = s.wait_deliveries(1, result="delivered")[0]
    assert ok["attempt"] == "2"
    s.wait_queue_empty()


@pytest.mark.parametrize("code", [1, 64, 67, 78, 100, 111])
def test_other_exit_status_fails(server_factory, out, code):
    s = server_factory(router='<x> = "fail"@pipe\n')
    install_app(s.base, "fail", f"#!/bin/sh\ncat >/dev/null\nexit {code}\n")
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1, rcpt="x@test.example")[0]
    assert d["result"] == "failed"
    assert d["reason"] == f"554 5.3.0 pipe transport gave exit status {code}"
    s.wait_queue_empty()


def test_stderr_output_fails_a_zero_exit(server_factory):
    s = server_factory(router='<x> = "chatty"@pipe\n')
    install_app(s.base, "chatty", "#!/bin/sh\ncat >/dev/null\n"
                "echo 'mailbox is full' >&2\nexit 0\n")
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert "mailbox is full" in d["reason"]
    assert d["reason"].startswith("554 5.3.0")


def test_stderr_output_with_temporary_status_stays_deferred(server_factory):
    s = server_factory(router='<x> = "chatty"@pipe\n')
    install_app(s.base, "chatty", "#!/bin/sh\ncat >/dev/null\n"
                "echo 'try later' >&2\nexit 75\n")
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "deferred"
    assert d["reason"].startswith("451 4.3.0")


def test_stderr_tag_lets_the_exit_status_decide(server_factory):
    s = server_factory(router='<ok> = "[STDERR] warn 0"@pipe\n'
                              '<bad> = "[STDERR]warn 2"@pipe\n')
    install_app(s.base, "warn", "#!/bin/sh\ncat >/dev/null\n"
                "echo 'no such list: foo' >&2\nexit $1\n")
    s.start()
    s.submit(message(to="ok@test.example"))
    s.submit(message(to="bad@test.example"))
    ok = s.wait_deliveries(1, rcpt="ok@test.example")[0]
    bad = s.wait_deliveries(1, rcpt="bad@test.example")[0]
    assert ok["result"] == "delivered"
    assert bad["result"] == "failed"
    assert bad["reason"].startswith("554 5.3.0")
    assert "no such list: foo" in bad["reason"]


@pytest.mark.parametrize("size", [10, 300_000])
def test_program_must_read_all_of_stdin(server_factory, size):
    s = server_factory(router='<x> = "lazy"@pipe\n')
    install_app(s.base, "lazy", "#!/bin/sh\nexit 0\n")
    s.start()
    s.submit(message(to="x@test.example", body="y" * size + "\n"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert "did not read all of its input" in d["reason"]


def test_program_closing_stdin_early_fails(server_factory):
    s = server_factory(router='<x> = "closer"@pipe\n')
    install_app(s.base, "closer", "#!/bin/sh\nhead -c 5 >/dev/null\n"
                "exec 0<&-\nsleep 0.2\nexit 0\n")
    s.start()
    s.submit(message(to="x@test.example", body="z" * 200_000 + "\n"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert "did not read all of its input" in d["reason"]


def test_chatty_stdout_never_blocks(server_factory):
    s = server_factory(router='<x> = "talker"@pipe\n')
    install_app(s.base, "talker", "#!/bin/sh\ncat >/dev/null\n"
                "head -c 5000000 /dev/zero\nexit 0\n")
    s.start()
    s.submit(message(to="x@test.example"))
    assert s.wait_deliveries(1)[0]["result"] == "delivered"


def test_death_by_signal_fails(server_factory):
    s = server_factory(router='<x> = "crash"@pipe\n')
    install_app(s.base, "crash", "#!/bin/sh\ncat >/dev/null\nkill -SEGV $$\n")
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert d["signal"] == "11"
    assert "signal 11" in d["reason"]


def test_time_limit_kills_the_whole_process_group(server_factory, tmpdir755):
    # a sleep duration nobody else uses marks the group's processes
    marker = f"sleep 300.{time.monotonic_ns() % 1000000:06d}"
    cfg = BASE_CONFIG.replace("time-limit = 20s", "time-limit = 2s")
    s = server_factory(config=cfg, router='<x> = "sleeper"@pipe\n')
    # the program backgrounds a child, then hangs; both must die
    install_app(s.base, "sleeper", f"""
        #!/bin/sh
        cat >/dev/null
        sh -c '{marker}' &
        {marker}
    """)
    s.start()
    s.submit(message(to="x@test.example"))
    wait_for(lambda: subprocess.run(["pgrep", "-f", marker],
                                    capture_output=True).returncode == 0,
             what="the program to start")
    d = s.wait_deliveries(1, timeout=30)[0]
    assert d["result"] == "failed"
    assert d["timeout"] == "yes"
    assert "time limit" in d["reason"]
    wait_for(lambda: subprocess.run(["pgrep", "-f", marker],
                                    capture_output=True).returncode == 1,
             timeout=10, what="no process of the group left")
    s.wait_queue_empty()


def test_zombies_are_reaped(server_factory):
    s = server_factory(router='<x> = "orphan"@pipe\n')
    # the program leaves an orphan that outlives it for a moment
    install_app(s.base, "orphan", "#!/bin/sh\ncat >/dev/null\n"
                "(sleep 0.3 &) \nexit 0\n")
    s.start()
    for i in range(5):
        s.submit(message(to="x@test.example"))
    s.wait_deliveries(5)
    ppids = {s.proc.pid}
    # the spawn helper is the server's child; no zombie may hang under it

    def zombies():
        out = subprocess.run(["ps", "-eo", "stat=,ppid="], capture_output=True,
                             text=True).stdout
        kids = subprocess.run(["pgrep", "-P", str(s.proc.pid)],
                              capture_output=True, text=True).stdout.split()
        parents = ppids | {int(k) for k in kids}
        return [l for l in out.splitlines()
                if l.split()[0].startswith("Z") and int(l.split()[1]) in parents]
    wait_for(lambda: not zombies(), timeout=10, what="no zombies")


def test_arguments_in_order_file_retpath_rcpt(server_factory, out):
    s = start(server_factory,
              f'<a> = "[RCPT] [FILE][RETPATH] record {out} -x"@pipe\n').start()
    s.submit(message(to="a@test.example", frm="joe@remote.example"))
    s.wait_deliveries(1, result="delivered")
    (run,) = runs(out)
    a = args_of(run)         # argv[1:] ("$@" of the script)
    assert a[:2] == [out, "-x"]
    # -f names the program's private copy of its queue file (fd 3)
    assert a[2] == "-f" and a[3] == "/dev/fd/3"
    assert a[4:] == ["-p", "joe@remote.example", "-r", "a@test.example"]
    # with [FILE] stdin is empty and the working directory is the base dir
    assert read(os.path.join(run, "stdin")) == ""
    assert read(os.path.join(run, "cwd")).strip() == s.base


def test_file_tag_gives_a_readable_unchangeable_queue_file(server_factory, out):
    s = server_factory(router=f'<f> = "[FILE] peek {out}"@pipe\n')
    install_app(s.base, "peek", r"""
        #!/bin/sh
        out=$1; file=$3
        # skip the envelope up to the first empty line
        sed '1,/^$/d' "$file" > "$out/body"
        exec 2>/dev/null    # the failures below are expected, not reports
        if (echo tamper >> "$file"); then echo wrote > "$out/write"; fi
        if chmod 666 "$file"; then echo chmod > "$out/chmod"; fi
        if rm -f "$file" && [ ! -e "$file" ]; then echo rm > "$out/rm"; fi
        echo ok > "$out/done"
    """)
    s.start()
    s.submit(message(to="f@test.example", body="file body\n"))
    s.wait_deliveries(1, result="delivered")
    assert read(os.path.join(out, "body")).endswith("\n\nfile body\n")
    for attempt in ("write", "chmod", "rm"):
        assert not os.path.exists(os.path.join(out, attempt)), attempt


def test_environment_is_exactly_the_documented_one(server_factory, out):
    s = start(server_factory, f'<env> = "record {out}"@pipe\n').start()
    s.submit(message(to="env@test.example", frm="joe@remote.example"))
    s.wait_deliveries(1, result="delivered")
    (run,) = runs(out)
    env = env_of(run)
    # the shell adds PWD to its own environ only after start; /proc shows
    # what the program was given
    assert set(env) == {"PATH", "SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT",
                        "QUEUE_ID", "DELIVERY_ID"}
    assert env["SENDER"] == "joe@remote.example"
    assert env["RECIPIENT"] == f'"record {out}"@pipe'
    assert env["ORIGINAL_RECIPIENT"] == "env@test.example"
    assert len(env["QUEUE_ID"]) == 16 and env["QUEUE_ID"].isdigit()
    uid, n = env["DELIVERY_ID"].rsplit(".", 1)
    assert len(uid) == 32 and n == "0"


def test_runs_as_the_unprivileged_user_with_umask_077(server_factory, out):
    s = start(server_factory, f'<who> = "record {out}"@pipe\n').start()
    s.submit(message(to="who@test.example"))
    s.wait_deliveries(1, result="delivered")
    (run,) = runs(out)
    assert read(os.path.join(run, "uid")).strip() == str(NOBODY.pw_uid)
    assert read(os.path.join(run, "groups")).split() == [str(NOBODY.pw_gid)]
    assert read(os.path.join(run, "umask")).strip() == "0077"
    assert read(os.path.join(run, "cwd")).strip() == os.path.join(s.base, "apps")
    # files the program made are private
    assert stat.S_IMODE(os.stat(os.path.join(run, "args")).st_mode) == 0o600


def test_only_stdin_stdout_stderr_are_open(server_factory, out):
    s = server_factory(router=f'<fd> = "fdcheck {out}/fds"@pipe\n')
    copy_app(s.base, "fdcheck", built_program("fdcheck"))
    s.start()
    s.submit(message(to="fd@test.example"))
    s.wait_deliveries(1, result="delivered")
    report = read(os.path.join(out, "fds"))
    fds = [l.split()[1] for l in report.splitlines() if l.startswith("fd ")]
    assert fds == ["0", "1", "2"], report


def test_delivery_id_is_stable_across_retries_and_restarts(server_factory, out):
    s = server_factory(router=f'<x> = "twice {out}"@pipe\n')
    install_app(s.base, "twice", """
        #!/bin/sh
        cat >/dev/null
        echo "$DELIVERY_ID" >> "$1/ids"
        [ -e "$1/go" ] && exit 0
        exit 75
    """)
    # the restart keeps the recorded retry time (2 s after the deferral;
    # docs/QUEUE.md "Journal"), so the second run comes after it
    cfg = BASE_CONFIG.replace("retry = 1s", "retry = 2s, 1h")
    with open(os.path.join(s.base, "mailpipe.conf"), "w") as f:
        f.write(cfg)
    s.start()
    s.submit(message(to="x@test.example"))
    s.wait_deliveries(1, result="deferred")
    s.stop()
    open(os.path.join(out, "go"), "w").close()
    s.start()
    s.wait_deliveries(1, result="delivered")
    ids = read(os.path.join(out, "ids")).split()
    assert len(ids) == 2 and ids[0] == ids[1]


def test_one_run_per_recipient(server_factory, out):
    s = start(server_factory, f'<*> = "record {out} *"@pipe\n').start()
    s.submit(message(to="a@test.example, b@test.example, c@other.example"))
    s.wait_deliveries(3, result="delivered")
    got = sorted(args_of(r)[1] for r in runs(out))
    assert got == ["a", "b", "c"]
    ids = {os.path.basename(r) for r in runs(out)}
    assert len(ids) == 3


def test_processors_bound_parallel_programs(server_factory, out):
    cfg = BASE_CONFIG.replace("processors = 4", "processors = 2")
    s = server_factory(config=cfg, router=f'<*> = "span {out}"@pipe\n')
    install_app(s.base, "span", """
        #!/bin/sh
        cat >/dev/null
        s=$(date +%s.%N); sleep 0.4; e=$(date +%s.%N)
        echo "$s $e" > "$1/$DELIVERY_ID"
    """)
    s.start()
    for i in range(6):
        s.submit(message(to=f"p{i}@test.example"))
    s.wait_deliveries(6, result="delivered")
    spans = [tuple(map(float, read(os.path.join(out, f)).split()))
             for f in os.listdir(out)]
    events = sorted([(a, 1) for a, b in spans] + [(b, -1) for a, b in spans])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    assert peak == 2


def test_named_queue_serialises_in_arrival_order(server_factory, out):
    s = server_factory(router=f'<q-*> = "queue[SERIAL] seq {out} *"@pipe\n')
    install_app(s.base, "seq", """
        #!/bin/sh
        cat >/dev/null
        [ -e "$1/busy" ] && echo overlap >> "$1/errors"
        touch "$1/busy"; sleep 0.05
        echo "$2" >> "$1/order"
        rm "$1/busy"
    """)
    for i in range(8):
        s.submit(message(to=f"q-{i}@test.example"), name=f"m{i:02d}")
    s.start()
    s.wait_deliveries(8, result="delivered")
    assert read(os.path.join(out, "order")).split() == [str(i) for i in range(8)]
    assert not os.path.exists(os.path.join(out, "errors"))


def test_deferral_in_a_named_queue_holds_the_whole_queue(server_factory, out):
    s = server_factory(router=f'<q-*> = "queue[Q1] hold {out} *"@pipe\n')
    install_app(s.base, "hold", """
        #!/bin/sh
        cat >/dev/null
        if [ "$2" = 0 ] && [ ! -e "$1/again" ]; then touch "$1/again"; exit 75; fi
        echo "$2" >> "$1/order"
    """)
    for i in range(4):
        s.submit(message(to=f"q-{i}@test.example"), name=f"m{i:02d}")
    s.start()
    s.wait_deliveries(4, result="delivered")
    assert read(os.path.join(out, "order")).split() == ["0", "1", "2", "3"]


def test_direct_pipe_address_from_local_submission(server_factory, out):
    s = start(server_factory, "").start()
    s.submit(message(to=f'"record {out} direct"@pipe'))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "delivered"
    assert args_of(runs(out)[0]) == [out, "direct"]


def test_direct_pipe_addresses_refused_when_direct_is_none(server_factory, out):
    cfg = BASE_CONFIG.replace("processors = 4", "processors = 4\ndirect = none")
    # refused in the queue (a failed delivery line): local submission is
    # asynchronous here (refused at submission: test_enqueue_async.py)
    s = start(server_factory, "", config=async_config("authenticated", cfg))
    s.start()
    s.submit(message(to=f'"record {out}"@pipe'))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert d["reason"].startswith("550 5.7.1")
    assert runs(out) == []


def test_missing_application_fails(server_factory):
    s = server_factory(router='<x> = "nosuchapp"@pipe\n').start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert d["reason"].startswith("550 5.1.1")


@pytest.mark.parametrize("setting", ["app-dir =", "app-dir = /nonexistent/apps"])
def test_empty_or_missing_application_directory_rejects(server_factory, out,
                                                        setting):
    cfg = BASE_CONFIG.replace("app-dir = apps", setting)
    s = start(server_factory, f'<x> = "record {out}"@pipe\n', config=cfg)
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "failed"
    assert d["reason"].startswith("554 5.3.0")
    assert runs(out) == []


@pytest.mark.parametrize("what", ["dir-group-writable", "dir-owned-by-user",
                                  "prog-world-writable", "prog-owned-by-user",
                                  "symlink-to-untrusted"])
def test_untrusted_programs_are_refused(server_factory, out, tmpdir755, what):
    s = start(server_factory, f'<x> = "record {out}"@pipe\n')
    apps = os.path.join(s.base, "apps")
    prog = os.path.join(apps, "record")
    if what == "dir-group-writable":
        os.chmod(apps, 0o775)
    elif what == "dir-owned-by-user":
        os.chown(apps, NOBODY.pw_uid, 0)
    elif what == "prog-world-writable":
        os.chmod(prog, 0o757)
    elif what == "prog-owned-by-user":
        os.chown(prog, NOBODY.pw_uid, 0)
    elif what == "symlink-to-untrusted":
        evil = os.path.join(tmpdir755, "evil")
        os.rename(prog, evil)
        os.chmod(evil, 0o777)
        os.symlink(evil, prog)
    s.start()
    s.submit(message(to="x@test.example"))
    d = s.wait_deliveries(1)[0]
    assert d["result"] == "deferred"
    assert d["reason"].startswith("451 4.3.5")
    assert "writable" in d["reason"] or "owned by the program user" in d["reason"]
    assert runs(out) == []


def test_symlink_to_a_trusted_program_is_accepted(server_factory, out,
                                                   tmpdir755):
    s = start(server_factory, f'<x> = "link {out}"@pipe\n')
    os.symlink(os.path.join(s.base, "apps", "record"),
               os.path.join(s.base, "apps", "link"))
    s.start()
    s.submit(message(to="x@test.example"))
    assert s.wait_deliveries(1)[0]["result"] == "delivered"


def test_each_attempt_logs_one_key_value_line(server_factory, out):
    s = start(server_factory, f'<rec> = "record {out}"@pipe\n').start()
    s.submit(message(to="rec@test.example"))
    d = s.wait_deliveries(1)[0]
    for key in ("id", "rcpt", "module", "result", "reason"):
        assert key in d, d
    lines = [l for l in s.log().splitlines() if " delivery " in l]
    assert len(lines) == 1
