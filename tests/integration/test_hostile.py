"""Hostile recipient addresses: local parts built to inject options,
arguments, tags, queue prefixes or shell commands. Each one is submitted
as its own message to a router record that substitutes the local part
into a pipe command; the program records its argv. The proof: every run
got exactly the postmaster's words plus one argument holding the sender's
text verbatim, or the recipient was refused with a clear reason; nothing
else ever ran."""
import os

import pytest

from conftest import (BASE_CONFIG, async_config, install_app, nobody_dir,
                      wait_for)

ARGV = r"""
    #!/bin/sh
    # argv OUT ...: record the arguments exactly, NUL-separated
    cat > /dev/null
    printf '%s\0' "$@" > "$1/$DELIVERY_ID.args"
"""

PWNED = "/tmp/mailpipe-pwned"

# (local part as written in the To: header, expected argument or None when
# the recipient must be refused; "?" = either, as long as it is one argument)
CASES = [
    ("-rf", None),
    ("--help", None),
    ("-", None),
    ('"-x y"', None),
    ('"--output=/etc/passwd"', None),
    ('"- "', None),
    ('"; rm -rf / ;"', "; rm -rf / ;"),
    (f'"; touch {PWNED} ;"', f"; touch {PWNED} ;"),
    (f'"$(touch {PWNED})"', f"$(touch {PWNED})"),
    (f'"`touch {PWNED}`"', f"`touch {PWNED}`"),
    (f'"a|touch {PWNED}"', f"a|touch {PWNED}"),
    (f'"a&&touch {PWNED}"', f"a&&touch {PWNED}"),
    ("a|b", "a|b"),
    ("a&b", "a&b"),
    ("a'b", "a'b"),
    ("a`b", "a`b"),
    ("$HOME", "$HOME"),
    ('"a{b,c}"', "a{b,c}"),
    ("a{b}", "a{b}"),
    ("~root", "~root"),
    ("*", "*"),
    ('"*"', "*"),
    ('"a b c"', "a b c"),
    ('"a  b"', "a  b"),
    ('" leading"', " leading"),
    ('"trailing "', "trailing "),
    ('"[FILE]"', "[FILE]"),
    ('"[FILE] evil"', "[FILE] evil"),
    ('"[RETPATH][RCPT]"', "[RETPATH][RCPT]"),
    ('"[STDERR] x"', "[STDERR] x"),
    ('"queue[x]"', "queue[x]"),
    ('"queue[ROOT] sh -c id"', "queue[ROOT] sh -c id"),
    ('"x queue[y] [FILE]"', "x queue[y] [FILE]"),
    ('"\\\\"', "\\"),
    ('"a\\\\ b"', "a\\ b"),
    ('"a\\"b"', 'a"b'),
    ('"\\"quoted\\""', '"quoted"'),
    ('"\\-x"', None),           # unquotes to -x
    ('"a\\ b"', "a b"),
    ('"..\\/..\\/etc"', "../../etc"),
    ('"../../etc/passwd"', "../../etc/passwd"),
    ('".."', ".."),
    ('"%s%s%n"', "%s%s%n"),
    ('"<script>"', "<script>"),
    ('"a;b"', "a;b"),
    ('"a>b"', "a>b"),
    ('"a<b"', "a<b"),
    ('"a\\tb"', "atb"),
    ('"f\\0x"', "f0x"),
    ('"a@b"', "a@b"),
    ('"@"', "@"),
    ('"a,b"', "a,b"),
    ('"a:b"', "a:b"),
    ('"()"', "()"),
    ("=?utf-8?b?LXJm?=", "?"),
    ('"=?utf-8?q?-rf?="', "?"),
    ("\u00e9l\u00e8ve", "\u00e9l\u00e8ve"),
    ('"-\u00e9"', None),
    ("x" * 200, "?"),
]


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def test_at_least_fifty_cases():
    assert len(CASES) >= 50


def test_hostile_local_parts_never_inject(server_factory, out):
    if os.path.exists(PWNED):
        os.unlink(PWNED)
    cfg = BASE_CONFIG.replace("local-domains = test.example, other.example",
                              "local-domains = test.example, hostile.example")
    s = server_factory(config=cfg, router=(
        f'<*@hostile.example> = "argv {out} -u *"@pipe\n'))
    install_app(s.base, "argv", ARGV)
    s.start()
    for i, (local, _) in enumerate(CASES):
        s.submit(f"From: attacker@evil.example\nTo: {local}@hostile.example\n"
                 f"Subject: case {i}\n\nx\n", name=f"case{i:03d}")
    sub = os.path.join(s.base, "Submitted")
    # every file is either queued (gone) or rejected (.bad)
    wait_for(lambda: not [f for f in os.listdir(sub) if f.endswith(".sub")],
             timeout=60, what="all files picked up")
    queued = len(CASES) - len([f for f in os.listdir(sub) if f.endswith(".bad")])
    lines = s.wait_deliveries(queued, timeout=60)
    s.wait_queue_empty(timeout=60)

    records = {}
    nruns = len(os.listdir(out))
    for f in os.listdir(out):
        with open(os.path.join(out, f), "rb") as fh:
            args = [a.decode() for a in fh.read().split(b"\0")[:-1]]
        # "$@" of the script: the postmaster's words, then one argument
        assert args[:2] == [out, "-u"], args
        assert len(args) == 3, f"more than one argument: {args}"
        assert not any(ord(c) < 32 or ord(c) == 127 for c in args[2]), args
        records[args[2]] = args
    by_rcpt = {}
    for d in lines:
        by_rcpt.setdefault(d["rcpt"], []).append(d)
    bad = [f for f in os.listdir(sub) if f.endswith(".bad")]

    for i, (local, expect) in enumerate(CASES):
        if expect not in (None, "?"):
            assert f"case{i:03d}.bad" not in bad, \
                f"case {i} {local!r} was rejected at submission"
            assert expect in records, f"case {i} {local!r}: no run with {expect!r}"
    for d in lines:
        if d["result"] == "failed":
            assert d["reason"].startswith("550 5.1.3"), d
            assert "'-'" in d["reason"] or "control" in d["reason"], d
        else:
            assert d["result"] == "delivered", d
    refused = [d for d in lines if d["result"] == "failed"]
    must = sum(1 for _, e in CASES if e is None)
    may = sum(1 for _, e in CASES if e == "?")
    assert must <= len(refused) + len(bad) <= must + may
    assert nruns + len(refused) == len(lines)
    assert not any(a[2].startswith("-") for a in records.values())
    assert not os.path.exists(PWNED), "a shell ran the sender's text"


def test_substituted_text_never_changes_program_queue_or_tags(server_factory, out):
    cfg = BASE_CONFIG.replace("local-domains = test.example, other.example",
                              "local-domains = test.example, hostile.example")
    # asynchronous local submission: every refusal is a failed delivery
    s = server_factory(config=async_config("authenticated", cfg), router=(
        '<exec*@hostile.example> = exec*@pipe\n'))
    install_app(s.base, "argv", ARGV)
    s.start()
    s.submit('From: a@evil.example\nTo: "exec/../../bin/sh"@hostile.example\n\nx\n')
    s.submit('From: a@evil.example\nTo: "exec x -f shadow"@hostile.example\n\nx\n')
    s.submit('From: a@evil.example\nTo: "exec.hidden"@hostile.example\n\nx\n')
    got = s.wait_deliveries(3)
    for d in got:
        assert d["result"] == "failed", d
    # an application name built from sender text must still be a plain
    # name in the application directory: refused or unknown; nothing ran
    assert got[0]["reason"].startswith(("550 5.1.3", "550 5.1.1"))
    assert os.listdir(out) == []
