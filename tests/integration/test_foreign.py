"""ForeignQueue import: .msg files from another server's queue are moved
into Queue/ under fresh IDs and delivered; .tmp files are deleted; other
files are left alone; corrupt files are quarantined."""
import os

import pytest

from conftest import (BASE_CONFIG, DAEMON, chown_tree, install_app,
                      nobody_dir, wait_for)


def queue_file(uid, rcpts, body=b"Subject: foreign\n\nfrom another server\n",
               done=()):
    lines = [b"mailpipe-queue 1", b"uid " + uid.encode(), b"tag SMTP",
             b"submitted 1763892300", b"from <old@remote.example>",
             b"trusted no", b"size %d" % len(body)]
    for r in rcpts:
        state = b"D" if r in done else b"P"
        lines.append(b"rcpt " + state + b" 0 - <" + r.encode() + b">")
    lines.append(b"end")
    return b"\n".join(lines) + b"\n\n" + body


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


def test_foreign_queue_is_imported_and_delivered(server_factory, out):
    s = server_factory(router=f'<*> = "save {out}"@pipe\n')
    install_app(s.base, "save", "#!/bin/sh\ncat > \"$1/$DELIVERY_ID\"\n")
    fq = os.path.join(s.base, "ForeignQueue")
    os.makedirs(os.path.join(fq, "42"))
    files = {
        "1763892300000001.msg": queue_file("a" * 32, ["a@test.example"]),
        "42/1763892300000002.msg": queue_file("b" * 32, ["b@test.example",
                                                          "c@test.example"],
                                              done=("b@test.example",)),
        "1763892300000003.tmp": b"half written",
        "README.txt": b"left alone",
        "1763892300000004.msg": b"mailpipe-queue 9\ngarbage\n",
    }
    for name, data in files.items():
        with open(os.path.join(fq, name), "wb") as f:
            f.write(data)
    s.start()
    got = s.wait_deliveries(2)
    assert sorted(d["rcpt"] for d in got) == ["a@test.example", "c@test.example"]
    assert all(d["result"] == "delivered" for d in got)
    # a recipient recorded as delivered is never delivered again
    assert not [d for d in s.deliveries() if d["rcpt"] == "b@test.example"]
    s.wait_queue_empty()
    s.wait_log(r"ForeignQueue: done, 2 imported, 1 corrupt")
    left = sorted(os.path.relpath(os.path.join(r, f), fq)
                  for r, _, fs in os.walk(fq) for f in fs)
    assert left == ["README.txt"]
    corrupt = os.listdir(os.path.join(s.base, "Queue", "corrupt"))
    assert len(corrupt) == 1
    # DELIVERY_IDs come from the message's own uid, kept through the import
    assert sorted(os.listdir(out)) == ["a" * 32 + ".0", "b" * 32 + ".1"]


def test_foreign_queue_appearing_later_is_picked_up(server_factory, out):
    s = server_factory(router=f'<*> = "save {out}"@pipe\n')
    install_app(s.base, "save", "#!/bin/sh\ncat > \"$1/$DELIVERY_ID\"\n")
    s.start()
    tmp = os.path.join(s.base, "ForeignQueue.new")
    os.makedirs(tmp)
    with open(os.path.join(tmp, "1.msg"), "wb") as f:
        f.write(queue_file("c" * 32, ["late@test.example"]))
    # put there while the server runs: the operator gives it to the daemon
    # user, who must be able to read, rename and remove its files
    os.rename(tmp, os.path.join(s.base, "ForeignQueue"))
    s.wait_log(r"ForeignQueue: import failed: Operation not permitted "
               r"\(left in place\); the folder and its files must belong "
               r"to the daemon user")
    assert s.deliveries() == []
    chown_tree(os.path.join(s.base, "ForeignQueue"), DAEMON)
    d = s.wait_deliveries(1, timeout=20)[0]
    assert d["rcpt"] == "late@test.example" and d["result"] == "delivered"
