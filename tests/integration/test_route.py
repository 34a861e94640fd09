"""`mailpipe route ADDRESS`: the dry run, from config and router alone."""
import json
import os

from conftest import BASE_CONFIG, install_app, prog, run

ROUTER = r"""
# lists
<*@lists.test.example> = "[RETPATH] listmgr\ -u\ *"@pipe
<incoming> = "queue[PROC1] procin -mark"@pipe
<old-*> = *@other.example
<gone> = null
<closed> = error
"""


def make_base(base, config=BASE_CONFIG):
    cfg = config.replace("local-domains = test.example, other.example",
                         "local-domains = test.example, other.example, "
                         "lists.test.example")
    with open(os.path.join(base, "mailpipe.conf"), "w") as f:
        f.write(cfg)
    with open(os.path.join(base, "router"), "w") as f:
        f.write(ROUTER)
    install_app(base, "listmgr", "#!/bin/sh\ncat >/dev/null\n")
    install_app(base, "procin", "#!/bin/sh\ncat >/dev/null\n")


def route(base, *args):
    r = run([prog("mailpipe"), "--base", base, "route", *args])
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def fields(text):
    out = {}
    for line in text.splitlines():
        k, v = line.split(": ", 1)
        out.setdefault(k, []).append(v)
    return out


def test_pipe_route_prints_exact_argv_and_env_names(base):
    make_base(base)
    code, out, err = route(base, "joe@lists.test.example",
                           "--sender", "bob@remote.example")
    assert code == 0, err
    f = fields(out)
    assert f["route"] == ["PIPE"]
    assert f["module"] == ["PIPE"]
    assert f["target"] == ['"[RETPATH] listmgr -u joe"@pipe']
    assert f["queue"] == ["(its own)"]
    assert f["program"] == [os.path.join(base, "apps", "listmgr")]
    assert f["cwd"] == [os.path.join(base, "apps")]
    argv = [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("argv[")]
    assert argv == ["listmgr", "-u", "joe", "-p", "bob@remote.example"]
    assert f["env"] == ["PATH", "SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT",
                        "QUEUE_ID", "DELIVERY_ID"]
    assert f["rule"] == ["line 3"]


def test_quoted_spaces_stay_one_argument(base):
    make_base(base)
    code, out, _ = route(base, '"joe smith"@lists.test.example')
    assert code == 0
    argv = [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("argv[")]
    assert argv[:3] == ["listmgr", "-u", "joe smith"]


def test_named_queue_and_every_local_domain(base):
    make_base(base)
    for dom in ("test.example", "other.example"):
        code, out, _ = route(base, f"incoming@{dom}")
        assert code == 0
        f = fields(out)
        assert f["queue"] == ["PROC1"]
        argv = [l.split(": ", 1)[1] for l in out.splitlines()
                if l.startswith("argv[")]
        assert argv == ["procin", "-mark"]


def test_failures_exit_67_with_the_reply(base):
    make_base(base)
    code, out, _ = route(base, "--", "-rf@lists.test.example")
    assert code == 67
    assert fields(out)["route"] == ["REFUSED"]
    assert fields(out)["result"][0].startswith("550 5.1.3")
    code, out, _ = route(base, "nobody-here@test.example")
    assert code == 67 and "unknown user" in out
    code, out, _ = route(base, "closed@test.example")
    assert code == 67 and fields(out)["route"] == ["ERROR"]
    code, out, _ = route(base, "someone@far.example")
    assert code == 67 and fields(out)["route"] == ["NO_RELAY"]


def test_null_and_rewrite(base):
    make_base(base)
    code, out, _ = route(base, "gone@test.example")
    assert code == 0 and fields(out)["route"] == ["NULL"]
    code, out, _ = route(base, "old-x@test.example")
    # rewritten to x@other.example, which has no record: unknown user there
    assert code == 67 and "unknown user" in out


def test_direct_pipe_addresses_local_vs_smtp(base):
    make_base(base)
    code, out, _ = route(base, '"procin -x"@pipe')
    assert code == 0 and fields(out)["route"] == ["PIPE"]
    code, out, _ = route(base, '"procin -x"@pipe', "--smtp")
    assert code == 67 and fields(out)["result"][0].startswith("550 5.7.1")


def test_json_output(base):
    make_base(base)
    r = run([prog("mailpipe"), "--base", base, "--json", "route",
             "joe@lists.test.example"])
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["route"] == "PIPE"
    assert doc["argv"][:3] == ["listmgr", "-u", "joe"]
    assert doc["env"][0] == "PATH"


def test_config_error_exits_78(base):
    make_base(base)
    with open(os.path.join(base, "router"), "a") as f:
        f.write("<broken = x\n")
    code, _, err = route(base, "a@test.example")
    assert code == 78
    assert "router:8:" in err


def test_works_from_the_environment_base(base):
    make_base(base)
    r = run([prog("mailpipe"), "route", "incoming@test.example"],
            env={"MAILPIPE_BASE": base})
    assert r.returncode == 0 and b"procin" in r.stdout


def test_relative_base_shows_the_absolute_paths_the_server_uses(base):
    make_base(base)
    parent, name = os.path.split(base)
    r = run([prog("mailpipe"), "--base", name, "route", "incoming@test.example"],
            cwd=parent)
    assert r.returncode == 0
    f = fields(r.stdout.decode())
    assert f["program"] == [os.path.join(base, "apps", "procin")]
    assert f["cwd"] == [os.path.join(base, "apps")]
