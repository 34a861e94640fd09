"""The Submitted folder, end to end: files dropped as root or by sendmail
and mail as an unprivileged user, picked up by the real server and
delivered to a real program."""
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import (BASE_CONFIG, DAEMON, NOBODY, install_app, message,
                      nobody_dir, prog, run, wait_for)

SAVE = r"""
    #!/bin/sh
    # save OUT: the message and the envelope values, one file per delivery;
    # .rcpt comes last and whole (renamed into place): the test reads a
    # delivery once its .rcpt exists, and must never see it half written
    cat > "$1/$DELIVERY_ID.msg"
    printf '%s\n' "$SENDER" > "$1/$DELIVERY_ID.sender"
    printf '%s\n' "$ORIGINAL_RECIPIENT" > "$1/$DELIVERY_ID.rcpt.tmp"
    mv "$1/$DELIVERY_ID.rcpt.tmp" "$1/$DELIVERY_ID.rcpt"
"""


@pytest.fixture
def out(tmpdir755):
    return nobody_dir(os.path.join(tmpdir755, "out"))


@pytest.fixture
def srv(server_factory, out):
    s = server_factory(router=f'<*> = "save {out}"@pipe\n')
    install_app(s.base, "save", SAVE)
    return s


def delivered(out):
    """{original recipient: (sender, message text)} of every delivery."""
    got = {}
    for f in os.listdir(out):
        if f.endswith(".rcpt"):
            stem = os.path.join(out, f[:-5])
            with open(stem + ".rcpt") as a, open(stem + ".sender") as b, \
                    open(stem + ".msg") as c:
                got[a.read().strip()] = (b.read().strip(), c.read())
    return got


def wait_delivered(out, n):
    return wait_for(lambda: (lambda d: d if len(d) >= n else None)(delivered(out)),
                    what=f"{n} deliveries")


def test_envelope_to_wins_over_to_cc_bcc(srv, out):
    srv.start()
    path = srv.submit("Envelope-To: a@test.example, b@test.example\n"
                      "Envelope-To: c@test.example\n"
                      "From: joe@remote.example\nTo: x@test.example\n"
                      "Cc: y@test.example\nBcc: z@test.example\n"
                      "Subject: env\n\nbody\n")
    got = wait_delivered(out, 3)
    srv.wait_queue_empty()
    assert set(got) == {"a@test.example", "b@test.example", "c@test.example"}
    text = got["a@test.example"][1]
    assert "Envelope-To" not in text and "Bcc" not in text
    assert "To: x@test.example\n" in text and "Cc: y@test.example\n" in text
    assert not os.path.exists(path)


def test_to_cc_bcc_minus_envelope_ignore(srv, out):
    srv.start()
    srv.submit("From: joe@remote.example\nTo: a@test.example, b@test.example\n"
               "Cc: c@test.example\nBcc: d@test.example\n"
               "Envelope-Ignore: b@test.example\nSubject: x\n\nhi\n")
    got = wait_delivered(out, 3)
    srv.wait_queue_empty()
    assert set(got) == {"a@test.example", "c@test.example", "d@test.example"}
    for _, text in got.values():
        assert "Bcc:" not in text and "Envelope-Ignore" not in text


def test_return_path_field_is_used_and_removed(srv, out):
    srv.start()
    srv.submit("Return-Path: <bounces@lists.example>\n"
               "From: joe@remote.example\nTo: a@test.example\n\nhi\n")
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == "bounces@lists.example"
    assert "Return-Path" not in text


def test_null_return_path(srv, out):
    srv.start()
    srv.submit("Return-Path: <>\nFrom: daemon@test.example\n"
               "To: a@test.example\n\nhi\n")
    sender, _ = wait_delivered(out, 1)["a@test.example"]
    assert sender == ""


def test_from_is_the_return_path_otherwise(srv, out):
    srv.start()
    srv.submit('From: "Joe" <joe@remote.example>\nTo: a@test.example\n\nhi\n')
    sender, _ = wait_delivered(out, 1)["a@test.example"]
    assert sender == "joe@remote.example"


def test_date_message_id_and_received_are_added(srv, out):
    srv.start()
    srv.submit("From: joe@remote.example\nTo: a@test.example\n\nhi\n")
    _, text = wait_delivered(out, 1)["a@test.example"]
    header = text.split("\n\n", 1)[0]
    assert header.startswith("Received: from local user 0\n\tby mx.test.example")
    assert "\nDate: " in header
    assert "\nMessage-ID: <" in header and "@mx.test.example>" in header


def test_existing_date_and_message_id_are_kept(srv, out):
    srv.start()
    srv.submit("From: joe@remote.example\nTo: a@test.example\n"
               "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <keep@me>\n\nhi\n")
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert text.count("Date:") == 1 and "Date: Mon, 1 Jan 2024" in text
    assert text.count("Message-ID:") == 1 and "<keep@me>" in text


def test_crlf_files_are_stored_with_lf(srv, out):
    srv.start()
    srv.submit(b"From: joe@remote.example\r\nTo: a@test.example\r\n\r\nhi\r\nthere\r\n")
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert "\r" not in text and text.endswith("\n\nhi\nthere\n")


@pytest.mark.parametrize("content,reason", [
    ("From: joe@remote.example\nSubject: none\n\nno recipient\n", "recipient"),
    ("this is not a header\n\nbody\n", "header"),
    ('From: joe@remote.example\nTo: "unterminated@test.example\n\nx\n', "address"),
    ("From: joe@remote.example\nTo: a@-bad-.example\n\nx\n", "address"),
    ("From: joe@remote.example\nTo: undisclosed-recipients:;\n\nx\n", "recipient"),
])
def test_bad_files_are_renamed_with_a_reason(srv, out, content, reason):
    srv.start()
    path = srv.submit(content, name="bad1")
    bad = path[:-4] + ".bad"
    wait_for(lambda: os.path.exists(bad), what=".bad file")
    assert not os.path.exists(path)
    line = srv.wait_log(r"Submitted/bad1\.sub rejected: [^\n]*")[0]
    assert reason in line.lower()
    assert delivered(out) == {}


# Point 7 of issue 13 (SPEC "Submitted folder"): no Return-Path: and no
# From: takes the submitting user (the file owner's login at [server]
# hostname); a message without From: gets one.

def header_of(text):
    return text.split("\n\n", 1)[0] + "\n"


@pytest.mark.parametrize("owner", [None, NOBODY], ids=["root", "nobody"])
def test_no_return_path_and_no_from_takes_the_submitting_user(srv, out, owner):
    srv.start()
    path = srv.submit("To: a@test.example\nSubject: x\n\nno sender\n",
                      owner=owner)
    login = owner.pw_name if owner else "root"
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == f"{login}@mx.test.example"
    header = header_of(text)
    assert header.count("From:") == 1
    assert f"\nFrom: {login}@mx.test.example\n" in header
    assert not os.path.exists(path[:-4] + ".bad")


def test_a_missing_from_names_the_return_path(srv, out):
    srv.start()
    srv.submit("Return-Path: <bounces@lists.example>\nTo: a@test.example\n"
               "\nhi\n", owner=NOBODY)
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == "bounces@lists.example"
    assert "\nFrom: bounces@lists.example\n" in header_of(text)


def test_a_missing_from_with_a_null_return_path_names_the_user(srv, out):
    srv.start()
    srv.submit("Return-Path: <>\nTo: a@test.example\n\nhi\n", owner=NOBODY)
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == ""
    assert f"\nFrom: nobody@mx.test.example\n" in header_of(text)


def unused_uid():
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            return uid


def test_an_owner_without_passwd_entry_is_rejected_when_needed(srv, out):
    """The submitting user has no name: a file that needs it (no
    Return-Path: and no From:, or a null one and no From:) is renamed
    .bad with the uid in the log line; one that does not is queued."""
    uid = unused_uid()
    srv.start()
    ghost = pwd.struct_passwd(("ghost", "x", uid, uid, "", "/", "/bin/sh"))
    need = srv.submit("To: a@test.example\n\nwho?\n", name="ghost1",
                      owner=ghost)
    null = srv.submit("Return-Path: <>\nTo: a@test.example\n\nwho?\n",
                      name="ghost2", owner=ghost)
    for p in (need, null):
        wait_for(lambda: os.path.exists(p[:-4] + ".bad"), what=".bad file")
        assert not os.path.exists(p)
    for name in ("ghost1", "ghost2"):
        line = srv.wait_log(rf"Submitted/{name}\.sub rejected: [^\n]*")[0]
        assert "submitting user is unknown" in line
        assert f"owner uid {uid} has no passwd entry" in line
    srv.submit("From: joe@remote.example\nTo: a@test.example\n\nok\n",
               owner=ghost)
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == "joe@remote.example"
    assert text.startswith(f"Received: from local user {uid}\n")


def test_too_many_hops_is_rejected(srv, out):
    srv.start()
    rcv = "".join(f"Received: from h{i} by h{i + 1}; Mon, 1 Jan 2024 00:00:00 +0000\n"
                  for i in range(30))
    path = srv.submit(rcv + "From: joe@remote.example\nTo: a@test.example\n\nloop\n",
                      name="loop")
    wait_for(lambda: os.path.exists(path[:-4] + ".bad"), what=".bad file")
    assert "hop" in srv.wait_log(r"Submitted/loop\.sub rejected: [^\n]*")[0]
    # 29 Received: fields plus ours is 30, the limit: accepted
    srv.submit(rcv.split("\n", 1)[1] + "From: joe@remote.example\n"
               "To: a@test.example\n\nok\n")
    wait_delivered(out, 1)


def test_symlinks_hard_links_and_fifos_are_refused(srv, out, tmpdir755):
    sub = os.path.join(srv.base, "Submitted")
    os.makedirs(sub, exist_ok=True)
    target = os.path.join(tmpdir755, "secret")
    with open(target, "w") as f:
        f.write("From: a@test.example\nTo: a@test.example\n\nsecret\n")
    os.symlink(target, os.path.join(sub, "link.sub"))
    os.link(target, os.path.join(sub, "hard.sub"))
    os.mkfifo(os.path.join(sub, "fifo.sub"))
    srv.start()
    for name in ("link", "hard", "fifo"):
        wait_for(lambda: os.path.lexists(os.path.join(sub, name + ".bad")),
                 what=f"{name}.bad")
    log = srv.log()
    assert "link.sub rejected: is a symbolic link" in log
    assert "hard.sub rejected: has more than one link" in log
    assert "fifo.sub rejected: is not a regular file" in log
    assert delivered(out) == {}
    with open(target) as f:
        assert "secret" in f.read()


def test_other_extensions_are_ignored(srv, out):
    sub = os.path.join(srv.base, "Submitted")
    os.makedirs(sub, exist_ok=True)
    for name in ("draft.tmp", "note.txt", "x.sub.old"):
        with open(os.path.join(sub, name), "w") as f:
            f.write(message(to="a@test.example"))
    srv.start()
    srv.submit(message(to="b@test.example"))
    wait_delivered(out, 1)
    assert set(os.listdir(sub)) == {"draft.tmp", "note.txt", "x.sub.old"}
    assert "a@test.example" not in delivered(out)


def test_files_dropped_while_down_are_picked_up_at_start(srv, out):
    for i in range(5):
        srv.submit(message(to=f"r{i}@test.example"))
    srv.start()
    assert len(wait_delivered(out, 5)) == 5


@pytest.fixture
def slow_srv(server_factory, out):
    """A server that scans once an hour: only notifications can make a
    file go fast."""
    cfg = BASE_CONFIG.replace("scan-interval = 1s\n\n[foreign",
                              "scan-interval = 1h\n\n[foreign")
    s = server_factory(config=cfg, router=f'<*> = "save {out}"@pipe\n')
    install_app(s.base, "save", SAVE)
    return s


def test_notification_picks_files_up_before_the_scan_interval(slow_srv, out):
    slow_srv.start()
    slow_srv.submit(message(to="quick@test.example"))
    wait_delivered(out, 1)


def test_owner_is_recorded_as_the_submitting_user(srv, out):
    srv.start()
    srv.submit(message(to="a@test.example"), owner=NOBODY)
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert text.startswith(f"Received: from local user {NOBODY.pw_uid}\n")


def ensure_submit_group():
    try:
        return grp.getgrnam("mailpipe-submit").gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", "mailpipe-submit"], check=True)
        return grp.getgrnam("mailpipe-submit").gr_gid


def test_submitted_is_1730_with_the_submit_group(srv):
    gid = ensure_submit_group()
    srv.start()
    st = os.stat(os.path.join(srv.base, "Submitted"))
    assert stat.S_IMODE(st.st_mode) == 0o1730
    # owned by the daemon user, who reads and removes the files
    assert st.st_uid == DAEMON.pw_uid and st.st_gid == gid


def test_sendmail_as_an_unprivileged_user_is_delivered(srv, out, tmpdir755):
    ensure_submit_group()
    srv.start()
    sm = os.path.join(tmpdir755, "sendmail")
    shutil.copy(prog("sendmail"), sm)
    os.chown(sm, 0, grp.getgrnam("mailpipe-submit").gr_gid)
    os.chmod(sm, 0o2755)
    r = run([sm, "-f", "nobody@test.example", "a@test.example"],
            input=b"Subject: from nobody\n\nhello from an ordinary user\n",
            env={"MAILPIPE_BASE": srv.base}, user=NOBODY)
    assert r.returncode == 0, r.stderr
    sender, text = wait_delivered(out, 1)["a@test.example"]
    assert sender == "nobody@test.example"
    assert text.startswith(f"Received: from local user {NOBODY.pw_uid}\n")
    assert text.endswith("\n\nhello from an ordinary user\n")


def test_mail_command_is_delivered(srv, out):
    srv.start()
    r = run([prog("mail"), "-s", "hi", "-c", "c@test.example", "a@test.example"],
            input=b"mail body\n", env={"MAILPIPE_BASE": srv.base})
    assert r.returncode == 0, r.stderr
    got = wait_delivered(out, 2)
    _, text = got["a@test.example"]
    assert "Subject: hi\n" in text and text.endswith("\n\nmail body\n")
    assert "c@test.example" in got


def test_sendmail_works_while_the_server_is_down(srv, out):
    srv.start()     # an installed system: Submitted/ exists
    srv.stop()
    r = run([prog("sendmail"), "-i", "a@test.example"],
            input=b"Subject: queued while down\n\n.\nstill here\n",
            env={"MAILPIPE_BASE": srv.base})
    assert r.returncode == 0, r.stderr
    srv.start()
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert text.endswith("\n\n.\nstill here\n")


# ---------------------------------------------------------------------------
# Files still being written (docs/LOCAL-SUBMISSION.md "When the server
# takes a file"): taken when renamed in or closed after writing, or once
# unchanged for the settle time; never taken half written.

def wait_looked_at(srv, name, why="is open for writing"):
    """Wait until the server has looked at Submitted/NAME.sub; it must have
    let it wait (not rejected or queued it)."""
    rx = rf"Submitted/{name}\.sub (is open for writing: waiting|" \
         rf"changed recently: waiting|rejected[^\n]*|queued)"
    seen = srv.wait_log(rx)[0]
    assert seen == f"{why}: waiting", f"{name}.sub was taken: {seen}"

def test_a_file_written_in_place_is_taken_whole_after_its_close(srv, out):
    srv.start()
    path = os.path.join(srv.base, "Submitted", "inplace.sub")
    with open(path, "w") as f:
        # half a header: taken now, it would have no recipient (.bad)
        f.write("From: joe@remote.example\nTo: ")
        f.flush()
        # the server has looked at it (a scan) and let it be
        wait_looked_at(srv, "inplace")
        assert os.path.exists(path)
        f.write("a@test.example\nSubject: in place\n\n" + "line\n" * 1000)
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert text.endswith("\n\n" + "line\n" * 1000)
    assert "Subject: in place\n" in text
    assert not os.path.exists(path[:-4] + ".bad")
    assert "rejected" not in srv.log_since_start()


def test_a_truncated_then_rewritten_file_is_delivered_as_rewritten(srv, out):
    srv.start()
    path = os.path.join(srv.base, "Submitted", "rewrite.sub")
    with open(path, "w") as f:
        f.write(message(to="a@test.example", subject="first draft"))
        f.flush()
        wait_looked_at(srv, "rewrite")
        f.seek(0)
        f.truncate()
        f.flush()
        f.write(message(to="a@test.example", subject="final",
                        body="the final text\n"))
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert "Subject: final\n" in text and text.endswith("the final text\n")
    srv.wait_queue_empty()
    assert len(delivered(out)) == 1
    assert "first draft" not in text
    assert not os.path.exists(path[:-4] + ".bad")


def test_a_file_renamed_in_is_taken_at_once(slow_srv, out):
    s = slow_srv.start()
    t0 = time.monotonic()
    s.submit(message(to="moved@test.example"))     # .tmp, then rename
    wait_delivered(out, 1)
    # not held for the settle time a file without notification waits for
    assert "waiting" not in s.log_since_start()
    assert time.monotonic() - t0 < 8


def test_a_file_closed_after_writing_is_taken_at_once(slow_srv, out):
    s = slow_srv.start()
    t0 = time.monotonic()
    with open(os.path.join(s.base, "Submitted", "closed.sub"), "w") as f:
        f.write(message(to="closed@test.example"))
    wait_delivered(out, 1)
    assert "waiting" not in s.log_since_start()
    assert time.monotonic() - t0 < 8


def test_a_large_file_written_slowly_in_place_is_taken_whole(srv, out):
    """Written in place over several scans (1 s apart) and streamed once
    closed: one delivery, every byte."""
    srv.start()
    path = os.path.join(srv.base, "Submitted", "slow.sub")
    body = "".join(f"line {i:07d}\n" for i in range(100000))
    t0 = time.monotonic()
    with open(path, "w") as f:
        f.write("From: joe@remote.example\nTo: a@test.example\n\n")
        for i in range(0, len(body), 65536):
            f.write(body[i:i + 65536])
            f.flush()
            time.sleep(0.1)
        assert time.monotonic() - t0 > 2     # two scans or more
        wait_looked_at(srv, "slow")
    _, text = wait_delivered(out, 1)["a@test.example"]
    assert text.endswith("\n\n" + body)
    assert not os.path.exists(path[:-4] + ".bad")
    srv.wait_queue_empty()
    assert len(delivered(out)) == 1


def test_a_file_changed_just_before_the_start_waits_to_settle(srv, out):
    """No notification vouches for a file found at start: it is taken once
    it has not changed for the settle time (here the 1 s scan interval)."""
    sub = os.path.join(srv.base, "Submitted")
    os.makedirs(sub, exist_ok=True)
    path = os.path.join(sub, "fresh.sub")
    with open(path, "w") as f:
        f.write(message(to="a@test.example"))
    srv.start()
    wait_looked_at(srv, "fresh", "changed recently")
    wait_delivered(out, 1)
    log = srv.log_since_start()
    assert (log.index("fresh.sub changed recently") <
            log.index("fresh.sub queued"))


def test_a_large_file_streams_and_keeps_crlf_rules(srv, out):
    """Past 64 KiB only the header is held; the body is copied with CR LF
    turned into LF, across the copy's chunk boundaries."""
    srv.start()
    body = b"".join(b"crlf line %07d\r\n" % i for i in range(40000))
    srv.submit(b"From: joe@remote.example\r\nTo: a@test.example\r\n"
               b"Bcc: hidden@test.example\r\n\r\n" + body + b"no newline\r")
    got = wait_delivered(out, 2)
    assert "hidden@test.example" in got
    stem = [f[:-5] for f in os.listdir(out) if f.endswith(".rcpt") and
            open(os.path.join(out, f)).read().strip() == "a@test.example"]
    with open(os.path.join(out, stem[0] + ".msg"), "rb") as f:
        raw = f.read()      # bytes: no newline translation
    assert b"Bcc" not in raw
    assert raw.endswith(b"\n\n" + body.replace(b"\r\n", b"\n") +
                        b"no newline\r")
    assert srv.wait_log(r"Submitted/t\d+\.sub queued")


def drop(srv, name, text, mode):
    """Put Submitted/NAME.sub in place (written as .tmp, then renamed in)
    with the given mode, as root."""
    sub = os.path.join(srv.base, "Submitted")
    tmp = os.path.join(sub, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, os.path.join(sub, name + ".sub"))
    return os.path.join(sub, name + ".sub")


def test_a_file_the_server_cannot_read_waits_logged_once(srv, out):
    """The server runs as an unprivileged user (here nobody, all of it:
    the development mode) and a file it may not read (root's, 0600) is
    left in place, logged once however many scans see it, never renamed
    .bad, and taken once its mode lets the server read it."""
    os.chown(srv.base, NOBODY.pw_uid, NOBODY.pw_gid)
    srv.start(user=NOBODY)
    path = drop(srv, "unread", message(to="late@test.example"), 0o600)
    rx = r"cannot read Submitted/unread\.sub: Permission denied"
    srv.wait_log(rx)
    # two more files, each found by a later scan, which sees unread.sub too
    for i in range(2):
        drop(srv, f"other{i}", message(to=f"other{i}@test.example"), 0o644)
        wait_delivered(out, i + 1)
    assert os.path.exists(path) and not os.path.exists(path[:-4] + ".bad")
    assert len(re.findall(rx, srv.log_since_start())) == 1
    os.chmod(path, 0o644)
    got = wait_delivered(out, 3)
    assert "late@test.example" in got
    srv.wait_queue_empty()
    assert not os.path.exists(path) and not os.path.exists(path[:-4] + ".bad")
    assert len(re.findall(rx, srv.log_since_start())) == 1
