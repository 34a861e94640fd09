"""sendmail and mail: the .sub files they write into BASE/Submitted.

The server is not needed for most tests: each creates BASE/Submitted and
checks the file the program wrote, byte for byte. The last tests hand the
files to a real mailpiped and check what is delivered.
"""
import email.header
import grp
import os
import pty
import pwd
import re
import resource
import shutil
import socket
import stat
import subprocess
import sys

import pytest

from conftest import (DAEMON, NOBODY, install_app, nobody_dir, prog, run,
                      wait_for)

HOST = "test.example"
GROUP = "mailpipe-submit"
ROOT = pwd.getpwuid(0)
ME = f"root@{HOST}"
NAME_RE = re.compile(r"^\d+\.\d+\.[0-9a-f]{16}\.sub$")


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture
def sbase(base):
    """A base directory with Submitted/ and a config naming the host."""
    os.mkdir(os.path.join(base, "Submitted"), 0o700)
    conf = os.path.join(base, "mailpipe.conf")
    with open(conf, "w") as f:
        f.write(f"[server]\nhostname = {HOST}\n")
    os.chmod(conf, 0o644)
    return base


def submitted(base):
    return os.path.join(base, "Submitted")


def sendmail(base, *args, input=b"", user=None, program=None, env=None):
    e = {"MAILPIPE_BASE": base}
    e.update(env or {})
    if isinstance(input, str):
        input = input.encode()
    return run([program or prog("sendmail"), *args], input=input, env=e,
               user=user)


def mail(base, *args, input=b"", user=None):
    if isinstance(input, str):
        input = input.encode()
    return run([prog("mail"), *args], input=input,
               env={"MAILPIPE_BASE": base}, user=user)


def ok(res):
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert res.stderr == b""


def fails(res, code, message):
    """The program failed with code and a one-line message naming it."""
    err = res.stderr.decode(errors="replace")
    assert res.returncode == code, err
    assert message in err, err
    name = os.path.basename(res.args[0]).split("-")[0]
    assert err.startswith(name + ": "), err


def one_sub(base, uid=0, gid=None):
    """The single .sub written (no .tmp left): checks name, mode, owner."""
    names = os.listdir(submitted(base))
    assert len(names) == 1, names
    assert NAME_RE.match(names[0]), names
    path = os.path.join(submitted(base), names[0])
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode)
    # the daemon user reads it as "others"; the submit group cannot
    assert stat.S_IMODE(st.st_mode) == 0o404
    assert st.st_nlink == 1
    assert st.st_uid == uid
    if gid is not None:
        assert st.st_gid == gid
    with open(path, "rb") as f:
        return f.read().decode()


def nothing_written(base):
    assert os.listdir(submitted(base)) == []


def header_lines(text):
    """The header of text, unfolded, as a list of lines."""
    head = text.split("\n\n", 1)[0]
    return re.sub(r"\n[ \t]", " ", head).split("\n")


def from_root():
    """The From: field sendmail/mail add for root (gecos name if any)."""
    name = ROOT.pw_gecos.split(",")[0]
    return f"From: {name} <{ME}>" if name else f"From: {ME}"


# ---------------------------------------------------------------------------
# sendmail: what goes into the .sub

def test_argument_recipients_become_envelope_to(sbase):
    res = sendmail(sbase, "joe@x.example", "bob", '"exec foo"@pipe',
                   input="From: a@b.example\nSubject: hi\n\nbody\n")
    ok(res)
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\n"
        'Envelope-To: joe@x.example, bob, "exec foo"@pipe\n'
        "From: a@b.example\nSubject: hi\n\nbody\n")


def test_smuggled_envelope_fields_are_removed(sbase):
    msg = ("Return-Path: <evil@x.example>\n"
           "From: a@b.example\n"
           "Envelope-To: evil@x.example,\n  more@x.example\n"
           "envelope-ignore: joe@x.example\n"
           "To: t@x.example\n"
           "ENVELOPE-TO:\tthird@x.example\n"
           "\nbody\nEnvelope-To: stays@body.example\n")
    ok(sendmail(sbase, "joe@x.example", input=msg))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n"
        "From: a@b.example\nTo: t@x.example\n"
        "\nbody\nEnvelope-To: stays@body.example\n")


def test_smuggled_fields_removed_with_t(sbase):
    msg = ("From: a@b.example\nTo: t@x.example\n"
           "Envelope-To: evil@x.example\nEnvelope-Ignore: t@x.example\n"
           "Return-Path: <evil@x.example>\n\nbody\n")
    ok(sendmail(sbase, "-t", input=msg))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nFrom: a@b.example\nTo: t@x.example\n"
        "\nbody\n")


def test_from_added_with_F(sbase):
    ok(sendmail(sbase, "-F", "Joe Q. Public", "joe@x.example",
                input="Subject: s\n\nbody\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n"
        f'From: "Joe Q. Public" <{ME}>\nSubject: s\n\nbody\n')


def test_from_added_from_gecos(sbase):
    ok(sendmail(sbase, "joe@x.example", input="Subject: s\n\nbody\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n"
        f"{from_root()}\nSubject: s\n\nbody\n")


def test_F_name_is_encoded_when_not_ascii(sbase):
    ok(sendmail(sbase, "-FJörg Müller", "joe@x.example",
                input="Subject: s\n\nbody\n"))
    text = one_sub(sbase)
    line = [l for l in header_lines(text) if l.startswith("From: ")][0]
    assert line.isascii()
    assert line.endswith(f" <{ME}>")
    decoded = str(email.header.make_header(
        email.header.decode_header(line[6:-len(f" <{ME}>")])))
    assert decoded.strip('"') == "Jörg Müller"


def test_existing_from_is_kept(sbase):
    ok(sendmail(sbase, "-F", "Ignored", "joe@x.example",
                input="from: Someone <s@x.example>\n\nbody\n"))
    text = one_sub(sbase)
    assert "Ignored" not in text
    assert header_lines(text)[2] == "from: Someone <s@x.example>"


def test_t_without_arguments_writes_no_envelope_to(sbase):
    msg = ("From: a@b.example\nTo: t1@x.example, T Two <t2@y.example>\n"
           "Cc: c@z.example\nBcc: hidden@w.example\nSubject: s\n\nbody\n")
    ok(sendmail(sbase, "-t", input=msg))
    # The server takes To/Cc/Bcc itself and removes Bcc.
    assert one_sub(sbase) == f"Return-Path: <{ME}>\n" + msg


def test_t_with_arguments_adds_them(sbase):
    msg = ("From: a@b.example\nTo: t1@x.example, T Two <t2@y.example>\n"
           "Cc: c@z.example,\n d@z.example\nBcc: hidden@w.example\n"
           "Subject: s\n\nbody\n")
    ok(sendmail(sbase, "-t", "extra@v.example", "c@z.example", input=msg))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\n"
        "Envelope-To: t1@x.example, t2@y.example, c@z.example, d@z.example,\n"
        " hidden@w.example, extra@v.example\n" + msg)


def test_t_without_any_recipient_is_refused(sbase):
    res = sendmail(sbase, "-t", input="From: a@b.example\nSubject: s\n\nb\n")
    fails(res, 64, "no recipients")
    nothing_written(sbase)


def test_t_with_bad_to_address_is_refused(sbase):
    res = sendmail(sbase, "-t", input="To: x y z\n\nb\n")
    fails(res, 65, "bad address in the To: field")
    nothing_written(sbase)


def test_long_envelope_to_is_folded(sbase):
    rcpts = [f"recipient-number-{i}@some.long.domain.example" for i in range(12)]
    ok(sendmail(sbase, *rcpts, input="Subject: s\n\nb\n"))
    text = one_sub(sbase)
    head = text.split("\n\n", 1)[0]
    assert all(len(l) <= 78 for l in head.split("\n"))
    env = [l for l in header_lines(text) if l.startswith("Envelope-To:")]
    assert env == ["Envelope-To: " + ", ".join(rcpts)]


def test_duplicate_recipients_written_once(sbase):
    ok(sendmail(sbase, "a@x.example", "b@x.example", "a@x.example",
                "A <a@x.example>, b@x.example", input="Subject: s\n\nb\n"))
    assert "Envelope-To: a@x.example, b@x.example\n" in one_sub(sbase)


def test_lone_dot_ends_input_without_i(sbase):
    ok(sendmail(sbase, "joe@x.example",
                input="Subject: s\n\nline1\n..\n.\nline2\n"))
    assert one_sub(sbase).endswith("\n\nline1\n..\n")


def test_lone_dot_with_crlf_ends_input(sbase):
    ok(sendmail(sbase, "joe@x.example",
                input="Subject: s\r\n\r\nline1\r\n.\r\nline2\r\n"))
    assert one_sub(sbase).endswith("\n\nline1\n")


@pytest.mark.parametrize("flag", [["-i"], ["-oi"], ["-o", "i"]])
def test_i_keeps_lone_dots(sbase, flag):
    ok(sendmail(sbase, *flag, "joe@x.example",
                input="Subject: s\n\nline1\n.\nline2\n."))
    assert one_sub(sbase).endswith("\n\nline1\n.\nline2\n.\n")


def test_crlf_converted(sbase):
    ok(sendmail(sbase, "-i", "joe@x.example",
                input=b"Subject: s\r\nTo: a@x.example,\r\n b@x.example\r\n"
                      b"\r\nline\r\nlone\rcr\r\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n{from_root()}\n"
        "Subject: s\nTo: a@x.example,\n b@x.example\n\nline\nlone\rcr\n")


@pytest.mark.parametrize("args,rp", [
    (["-f", "x@y.example"], "<x@y.example>"),
    (["-fx@y.example"], "<x@y.example>"),
    (["-f", "<x@y.example>"], "<x@y.example>"),
    (["-f", "<>"], "<>"),
    (["-f", ""], "<>"),
    (["-r", "z@y.example"], "<z@y.example>"),
])
def test_f_sets_return_path(sbase, args, rp):
    ok(sendmail(sbase, *args, "joe@x.example",
                input="From: a@b.example\n\nb\n"))
    assert one_sub(sbase).startswith(f"Return-Path: {rp}\nEnvelope-To: ")


@pytest.mark.parametrize("args,rp,frm", [
    # the From: added to a message without one names the return-path
    (["-f", "x@y.example"], "<x@y.example>", "From: x@y.example"),
    # -F names it; the caller's gecos name goes only with their own address
    (["-f", "x@y.example", "-F", "Joe Q"], "<x@y.example>",
     "From: Joe Q <x@y.example>"),
    (["-f", ME], f"<{ME}>", None),
    # unqualified: qualified as the server will qualify the return-path
    (["-f", "bob"], "<bob>", f"From: bob@{HOST}"),
    # a null return-path: the From: names the submitting user
    (["-f", "<>"], "<>", None),
    ([], f"<{ME}>", None),
])
def test_added_from_names_the_return_path(sbase, args, rp, frm):
    ok(sendmail(sbase, *args, "joe@x.example", input="Subject: s\n\nb\n"))
    assert one_sub(sbase) == (
        f"Return-Path: {rp}\nEnvelope-To: joe@x.example\n"
        f"{frm or from_root()}\nSubject: s\n\nb\n")


def test_input_without_header_is_all_body(sbase):
    ok(sendmail(sbase, "joe@x.example", input="Hello there\nTo: not@header\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n{from_root()}\n"
        "\nHello there\nTo: not@header\n")


def test_non_header_line_starts_the_body(sbase):
    ok(sendmail(sbase, "joe@x.example",
                input="Subject: s\nnot a header line\nmore\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n{from_root()}\n"
        "Subject: s\n\nnot a header line\nmore\n")


def test_empty_input(sbase):
    ok(sendmail(sbase, "joe@x.example", input=""))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n{from_root()}\n\n")


def test_mbox_from_line_dropped_and_final_newline_added(sbase):
    ok(sendmail(sbase, "joe@x.example",
                input="From joe@x.example Mon Jan  1 00:00:00 2024\n"
                      "From: a@b.example\n\nno newline"))
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n"
        "From: a@b.example\n\nno newline\n")


def test_nul_in_body_is_kept(sbase):
    ok(sendmail(sbase, "joe@x.example", input=b"From: a@b.example\n\na\0b\n"))
    assert one_sub(sbase).endswith("\n\na\0b\n")


def test_ignored_options_accepted(sbase):
    res = sendmail(sbase, "-oem", "-odb", "-bm", "-B8BITMIME", "-N", "never",
                   "-U", "-v", "--", "joe@x.example",
                   input="From: a@b.example\n\nb\n")
    assert res.returncode == 0, res.stderr
    assert one_sub(sbase).startswith(f"Return-Path: <{ME}>\nEnvelope-To: joe")


def test_hostname_falls_back_to_system_name(base):
    os.mkdir(os.path.join(base, "Submitted"))
    ok(sendmail(base, "joe@x.example", input="From: a@b.example\n\nb\n"))
    assert one_sub(base).startswith(
        f"Return-Path: <root@{socket.gethostname()}>\n")


def test_base_option(sbase, tmpdir755):
    ok(sendmail("/nonexistent", "--base", sbase, "joe@x.example",
                input="From: a@b.example\n\nb\n"))
    one_sub(sbase)


def test_verbose_names_the_file(sbase):
    res = sendmail(sbase, "-v", "joe@x.example", input="From: a@b\n\nb\n")
    assert res.returncode == 0
    names = os.listdir(submitted(sbase))
    assert res.stderr.decode() == (
        f"sendmail: submitted as {submitted(sbase)}/{names[0]}\n")


def test_every_run_gets_its_own_file(sbase):
    for _ in range(5):
        ok(sendmail(sbase, "joe@x.example", input="From: a@b\n\nb\n"))
    names = os.listdir(submitted(sbase))
    assert len(names) == 5 and all(NAME_RE.match(n) for n in names)


def test_closed_standard_descriptors(sbase):
    # fds 0-2 closed: /dev/null takes their place, so the .sub can never be
    # one of them; the message is empty.
    res = subprocess.run(["/bin/sh", "-c", 'exec "$0" joe@x.example '
                          "<&- >&- 2>&-", prog("sendmail")],
                         env={"MAILPIPE_BASE": sbase}, capture_output=True,
                         timeout=30)
    assert res.returncode == 0
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\nEnvelope-To: joe@x.example\n"
        f"{from_root()}\n\n")


def test_newaliases_mode_is_a_no_op(sbase):
    ok(sendmail(sbase, "-bi"))
    nothing_written(sbase)


# ---------------------------------------------------------------------------
# sendmail: failures

def test_no_recipients(sbase):
    res = sendmail(sbase, input="From: a@b\n\nb\n")
    fails(res, 64, "sendmail: no recipients\n")
    nothing_written(sbase)


@pytest.mark.parametrize("args,text", [
    (["-Z", "joe@x.example"], "unknown option -Z"),
    (["--bogus", "joe@x.example"], "unknown option --bogus"),
    (["-f"], "missing argument for option -f"),
    (["-bs"], "unsupported mode -bs"),
])
def test_usage_errors(sbase, args, text):
    res = sendmail(sbase, *args, input="From: a@b\n\nb\n")
    fails(res, 64, text)
    assert "\nusage: sendmail " in res.stderr.decode()
    nothing_written(sbase)


@pytest.mark.parametrize("args,text", [
    (["--", "-oops@x.example"], "starts with '-'"),
    (["joe\x01@x.example"], "control character"),
    (["joe@x.example\nBcc: evil@x.example"], "control character"),
    (["-f", "a@b.example\nTo: evil@x.example", "joe@x.example"],
     "control character"),
    (["-f", "-x@y.example", "joe@x.example"], "starts with '-'"),
    (["-F", "Name\nBcc: evil@x.example", "joe@x.example"], "-F name"),
    (["a@"], "bad recipient address"),
])
def test_bad_arguments(sbase, args, text):
    res = sendmail(sbase, *args, input="From: a@b\n\nb\n")
    fails(res, 64, text)
    nothing_written(sbase)


def test_nul_in_header(sbase):
    res = sendmail(sbase, "joe@x.example", input=b"Subject: a\0b\n\nbody\n")
    fails(res, 65, "NUL byte in the message header")
    nothing_written(sbase)


def test_missing_submitted(base):
    res = sendmail(base, "joe@x.example", input="From: a@b\n\nb\n")
    fails(res, 69, f"mailpipe is not set up: {base}/Submitted missing")


def test_submitted_not_a_directory(base):
    open(os.path.join(base, "Submitted"), "w").close()
    res = sendmail(base, "joe@x.example", input="From: a@b\n\nb\n")
    fails(res, 73, f"{base}/Submitted")
    assert "Not a directory" in res.stderr.decode()


def test_write_failure_removes_tmp(sbase):
    # A file size limit makes write() fail with EFBIG: EX_IOERR, no .tmp.
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    res = subprocess.run([prog("sendmail"), "joe@x.example"],
                         input=b"From: a@b\n\n" + b"x" * 10000 + b"\n",
                         env={"MAILPIPE_BASE": sbase}, capture_output=True,
                         preexec_fn=limit, timeout=30)
    fails(res, 74, "cannot write")
    assert "File too large" in res.stderr.decode()
    nothing_written(sbase)


# ---------------------------------------------------------------------------
# non-root submitters: the setgid model

def submit_gid():
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
        return grp.getgrnam(GROUP).gr_gid


def install_programs(bindir, gid):
    """Setgid copies of sendmail and mail (the way `meson install` installs
    them), and plain copies named NAME-plain."""
    os.mkdir(bindir, 0o755)
    progs = {}
    for name in ("sendmail", "mail"):
        dst = os.path.join(bindir, name)
        shutil.copyfile(prog(name), dst)
        os.chown(dst, 0, gid)
        os.chmod(dst, 0o2755)
        progs[name] = dst
        plain = os.path.join(bindir, name + "-plain")
        shutil.copyfile(prog(name), plain)
        os.chmod(plain, 0o755)
        progs[name + "-plain"] = plain
    return progs


@pytest.fixture
def setgid_base(sbase, tmpdir755):
    """Submitted/ 1730 root:mailpipe-submit and the programs installed."""
    gid = submit_gid()
    sub = submitted(sbase)
    os.chown(sub, 0, gid)
    os.chmod(sub, 0o1730)
    return sbase, gid, install_programs(os.path.join(tmpdir755, "bin"), gid)


def test_setgid_sendmail_as_nobody(setgid_base):
    base, gid, progs = setgid_base
    res = sendmail(base, "joe@x.example", input="Subject: s\n\nbody\n",
                   user=NOBODY, program=progs["sendmail"])
    ok(res)
    text = one_sub(base, uid=NOBODY.pw_uid, gid=gid)
    assert text == (f"Return-Path: <nobody@{HOST}>\n"
                    "Envelope-To: joe@x.example\n"
                    f"From: nobody <nobody@{HOST}>\nSubject: s\n\nbody\n")


def test_setgid_mail_as_nobody(setgid_base):
    base, gid, progs = setgid_base
    res = run([progs["mail"], "-s", "hi", "joe@x.example"], input=b"body\n",
              env={"MAILPIPE_BASE": base}, user=NOBODY)
    ok(res)
    assert one_sub(base, uid=NOBODY.pw_uid, gid=gid).startswith(
        f"Return-Path: <nobody@{HOST}>\n")


def test_without_setgid_nobody_is_refused(setgid_base):
    base, gid, progs = setgid_base
    res = sendmail(base, "joe@x.example", input="Subject: s\n\nbody\n",
                   user=NOBODY, program=progs["sendmail-plain"])
    fails(res, 77, f"cannot create {submitted(base)}/")
    assert "Permission denied" in res.stderr.decode()
    nothing_written(base)


def test_setgid_reads_config_without_the_group(setgid_base):
    # A config only the group may read is not read: the group is dropped
    # until the Submitted write, so the system's name is used.
    base, gid, progs = setgid_base
    conf = os.path.join(base, "mailpipe.conf")
    with open(conf, "w") as f:
        f.write("[server]\nhostname = secret.example\n")
    os.chown(conf, 0, gid)
    os.chmod(conf, 0o640)
    ok(sendmail(base, "joe@x.example", input="Subject: s\n\nb\n",
                user=NOBODY, program=progs["sendmail"]))
    assert one_sub(base, uid=NOBODY.pw_uid).startswith(
        f"Return-Path: <nobody@{socket.gethostname()}>\n")


def test_setgid_bp_does_not_use_the_group(setgid_base):
    base, gid, progs = setgid_base
    queue = os.path.join(base, "Queue")
    os.mkdir(queue)
    os.chown(queue, 0, gid)
    os.chmod(queue, 0o750)
    res = sendmail(base, "-bp", user=NOBODY, program=progs["sendmail"])
    fails(res, 77, f"cannot read {queue}: Permission denied")


def test_setgid_ignores_other_base_it_cannot_write(setgid_base, tmpdir755):
    # Pointing MAILPIPE_BASE elsewhere gains nothing: the group can only
    # write where it already may.
    base, gid, progs = setgid_base
    other = os.path.join(tmpdir755, "other")
    os.makedirs(os.path.join(other, "Submitted"), 0o755)
    res = sendmail(other, "joe@x.example", input="Subject: s\n\nb\n",
                   user=NOBODY, program=progs["sendmail"])
    fails(res, 77, "Permission denied")
    assert os.listdir(os.path.join(other, "Submitted")) == []


ATTEMPTS = r"""
import os, sys
def attempt(f):
    try:
        f()
        return "allowed"
    except PermissionError:
        return "denied"
    except Exception as e:
        return type(e).__name__
sub, root_file, other_file = sys.argv[1:4]
print(attempt(lambda: os.listdir(sub)))
print(attempt(lambda: open(root_file, "rb").read()))
print(attempt(lambda: open(other_file, "rb").read()))
print(attempt(lambda: os.unlink(root_file)))
print(attempt(lambda: os.unlink(other_file)))
print(attempt(lambda: os.rename(other_file, other_file + ".x")))
print(attempt(lambda: os.rename(sub + "/mine.tmp", other_file)))
"""


def test_nobody_cannot_list_read_or_remove_others(setgid_base):
    base, gid, progs = setgid_base
    sub = submitted(base)
    # One file from root, one from another local user.
    ok(sendmail(base, "joe@x.example", input="Subject: root\n\nb\n"))
    root_file = os.path.join(sub, os.listdir(sub)[0])
    other_file = os.path.join(sub, "other.sub")
    with open(other_file, "w") as f:
        f.write("Subject: other\n\nb\n")
    os.chown(other_file, 4242, gid)
    os.chmod(other_file, 0o600)

    def nobody_in_group():
        os.setgroups([gid])
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)
    # Even with the submit group (as the setgid program has it), nobody
    # can create its own file but not see or touch anyone else's.
    with open(os.path.join(sub, "mine.tmp"), "w"):
        pass
    os.chown(os.path.join(sub, "mine.tmp"), NOBODY.pw_uid, gid)
    res = subprocess.run([sys.executable, "-c", ATTEMPTS, sub, root_file,
                          other_file], capture_output=True, timeout=30,
                         preexec_fn=nobody_in_group, env={})
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().split() == ["denied"] * 7
    with open(other_file) as f:
        assert f.read() == "Subject: other\n\nb\n"
    assert os.path.exists(root_file)


# ---------------------------------------------------------------------------
# sendmail -bp

def write_msg(path, uid, submitted_at, rp, rcpts, body="Subject: q\n\nhi\n"):
    """A queue file in the docs/QUEUE.md format."""
    lines = ["mailpipe-queue 1", f"uid {uid}", "tag PIPE",
             f"submitted {submitted_at}", f"from <{rp}>", "user 0",
             "trusted yes", f"size {len(body.encode())}"]
    lines += [f"rcpt {state} 0 - <{addr}>" for state, addr in rcpts]
    lines += ["end", ""]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + body)


def test_bp_empty_queue(sbase):
    os.mkdir(os.path.join(sbase, "Queue"))
    res = sendmail(sbase, "-bp")
    ok(res)
    assert res.stdout == b"Mail queue is empty\n"


def test_bp_missing_queue(sbase):
    fails(sendmail(sbase, "-bp"), 69,
          f"mailpipe is not set up: {sbase}/Queue missing")


def test_bp_lists_messages(sbase):
    q = os.path.join(sbase, "Queue")
    write_msg(os.path.join(q, "1763892300000002.msg"), "b" * 32, 1763892360,
              "", [("P", "list@lists.example")], body="x" * 2000)
    write_msg(os.path.join(q, "07", "1763892300000001.msg"), "a" * 32,
              1763892300, "joe@example.com",
              [("D", "done@example.com"), ("P", "bob@example.com"),
               ("P", '"exec foo"@pipe')])
    write_msg(os.path.join(q, "corrupt", "1763892300000003.msg"), "c" * 32,
              1763892400, "bad@example.com", [("P", "x@example.com")])
    with open(os.path.join(q, "1763892300000004.tmp"), "w") as f:
        f.write("partial")
    res = sendmail(sbase, "-bp")
    ok(res)
    lines = res.stdout.decode().split("\n")
    assert lines[0].split() == ["-Queue", "ID-", "--Size--",
                                "---Arrival", "Time----",
                                "-Sender/Recipient-------"]
    when = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d"
    assert re.fullmatch(r"1763892300000001 +15 " + when + "  joe@example.com",
                        lines[1]), lines[1]
    assert lines[2] == " " * 48 + "bob@example.com"
    assert lines[3] == " " * 48 + '"exec foo"@pipe'
    assert lines[4] == ""
    assert re.fullmatch(r"1763892300000002 +2000 " + when + "  <>", lines[5])
    assert lines[6] == " " * 48 + "list@lists.example"
    assert lines[7:] == ["", "-- 2 Kbytes in 2 Requests.", ""]
    assert "done@example.com" not in res.stdout.decode()
    assert "bad@example.com" not in res.stdout.decode()


def test_bp_reports_corrupt_file_and_lists_the_rest(sbase):
    q = os.path.join(sbase, "Queue")
    write_msg(os.path.join(q, "1763892300000001.msg"), "a" * 32, 1763892300,
              "joe@example.com", [("P", "bob@example.com")])
    with open(os.path.join(q, "1763892300000002.msg"), "w") as f:
        f.write("garbage\n\nbody\n")
    res = sendmail(sbase, "-bp")
    assert res.returncode == 0
    assert "1763892300000002.msg: corrupt envelope" in res.stderr.decode()
    assert "bob@example.com" in res.stdout.decode()
    assert res.stdout.decode().endswith("-- 1 Kbytes in 1 Request.\n")


def test_bp_unreadable_queue(sbase, tmpdir755):
    q = os.path.join(sbase, "Queue")
    os.mkdir(q, 0o700)
    plain = os.path.join(tmpdir755, "sendmail")
    shutil.copyfile(prog("sendmail"), plain)
    os.chmod(plain, 0o755)
    res = sendmail(sbase, "-bp", user=NOBODY, program=plain)
    fails(res, 77, f"cannot read {q}: Permission denied")


def test_mailq_name_lists_the_queue(sbase, tmpdir755):
    os.mkdir(os.path.join(sbase, "Queue"))
    link = os.path.join(tmpdir755, "mailq")
    os.symlink(prog("sendmail"), link)
    res = sendmail(sbase, program=link)
    ok(res)
    assert res.stdout == b"Mail queue is empty\n"


# ---------------------------------------------------------------------------
# mail

def test_mail_builds_the_header(sbase):
    res = mail(sbase, "-s", "Hello there", "-c", "c1@x.example, c2@y.example",
               "-c", "c3@z.example", "-b", "secret@w.example", "joe@x.example",
               "bob", input="Hi\n")
    ok(res)
    assert one_sub(sbase) == (
        f"Return-Path: <{ME}>\n"
        "Envelope-To: joe@x.example, bob, c1@x.example, c2@y.example, c3@z.example,\n"
        " secret@w.example\n"
        f"{from_root()}\n"
        f"To: joe@x.example, bob@{HOST}\n"
        "Cc: c1@x.example, c2@y.example, c3@z.example\n"
        "Subject: Hello there\n"
        "\nHi\n")


def test_mail_qualifies_header_addresses_like_the_server(sbase):
    # Unqualified addresses get the server's default domain (the first
    # local domain) in To:/Cc:; the envelope leaves them to the server.
    with open(os.path.join(sbase, "mailpipe.conf"), "w") as f:
        f.write(f"[server]\nhostname = mx.{HOST}\n"
                f"[router]\nlocal-domains = {HOST}, other.example\n")
    ok(mail(sbase, "-c", "carl", "joe", input="Hi\n"))
    assert one_sub(sbase) == (
        f"Return-Path: <root@mx.{HOST}>\nEnvelope-To: joe, carl\n"
        f"{from_root().replace(ME, 'root@mx.' + HOST)}\n"
        f"To: joe@{HOST}\nCc: carl@{HOST}\n\nHi\n")


def test_mail_bcc_only_in_envelope(sbase):
    ok(mail(sbase, "-b", "secret@w.example", "joe@x.example", input="Hi\n"))
    text = one_sub(sbase)
    head = text.split("\n\n", 1)[0]
    assert "Bcc" not in head
    assert [l for l in head.split("\n") if "secret@w.example" in l] == [
        "Envelope-To: joe@x.example, secret@w.example"]


def test_mail_subject_encoded(sbase):
    subject = "Grüße aus Köln — ein recht langer Betreff, der gefaltet werden muss"
    ok(mail(sbase, "-s", subject, "joe@x.example", input="Hi\n"))
    text = one_sub(sbase)
    head = text.split("\n\n", 1)[0]
    assert head.isascii()
    assert all(len(l) <= 78 for l in head.split("\n"))
    line = [l for l in header_lines(text) if l.startswith("Subject: ")][0]
    assert "=?" in line
    decoded = str(email.header.make_header(email.header.decode_header(line[9:])))
    assert decoded == subject


def test_mail_8bit_body_gets_mime_fields(sbase):
    ok(mail(sbase, "joe@x.example", input="Grüße\n"))
    assert one_sub(sbase).endswith(
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nGrüße\n")


def test_mail_ascii_body_has_no_mime_fields(sbase):
    ok(mail(sbase, "joe@x.example", input="plain\r\n.\nmore"))
    text = one_sub(sbase)
    assert "MIME-Version" not in text
    # Not a terminal: a lone "." is body; CRLF converted; LF added.
    assert text.endswith("\n\nplain\n.\nmore\n")


def test_mail_lone_dot_ends_input_at_a_terminal(sbase):
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([prog("mail"), "joe@x.example"], stdin=slave,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={"MAILPIPE_BASE": sbase})
        os.close(slave)
        slave = -1
        os.write(master, b"first line\n.\n")
        # No end of file is ever sent: the "." alone must end the body.
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert one_sub(sbase).endswith("\n\nfirst line\n")


def test_mail_no_recipient(sbase):
    fails(mail(sbase, "-s", "x", input="b\n"), 64, "mail: no recipients")
    nothing_written(sbase)


@pytest.mark.parametrize("args,text", [
    (["-x", "joe@x.example"], "unknown option -x"),
    (["-s"], "missing argument for option -s"),
    (["-s", "a\nBcc: evil@x.example", "joe@x.example"], "subject"),
    (["--", "-joe@x.example"], "starts with '-'"),
])
def test_mail_usage_errors(sbase, args, text):
    fails(mail(sbase, *args, input="b\n"), 64, text)
    nothing_written(sbase)


def test_mail_missing_submitted(base):
    fails(mail(base, "joe@x.example", input="b\n"), 69,
          f"mailpipe is not set up: {base}/Submitted missing")


# ---------------------------------------------------------------------------
# end to end: the server reads what sendmail and mail wrote

RECORDER = """\
    #!/bin/sh
    f=$(mktemp "{out}/m.XXXXXX")
    {{ echo "SENDER=$SENDER"; echo "RCPT=$ORIGINAL_RECIPIENT"; cat; }} > "$f"
    """


def delivered(out):
    """{recipient: (sender, message)} of what the recorder received."""
    got = {}
    for name in os.listdir(out):
        with open(os.path.join(out, name)) as f:
            sender = f.readline().rstrip("\n").split("=", 1)[1]
            rcpt = f.readline().rstrip("\n").split("=", 1)[1]
            got[rcpt] = (sender, f.read())
    return got


def wait_done(srv, base):
    """Until the .sub was taken and every delivery finished: the .sub is
    removed only once the queue file is durable, so one of them always
    exists until then."""
    wait_for(lambda: not os.listdir(submitted(base)) and
             not srv.queue_files(), what="the submission to be delivered")


def e2e_server(server_factory, base):
    out = nobody_dir(os.path.join(os.path.dirname(base), "out"))
    srv = server_factory(router="<joe> = rec@pipe\n<bob> = rec@pipe\n"
                                "<evil> = rec@pipe\n")
    install_app(base, "rec", RECORDER.format(out=out))
    srv.start()
    return srv, out


def test_e2e_sendmail_t_with_smuggled_envelope(server_factory, base):
    srv, out = e2e_server(server_factory, base)
    msg = ("From: a@remote.example\nTo: joe@test.example\n"
           "Bcc: bob@test.example\nEnvelope-To: evil@test.example\n"
           "Return-Path: <evil@remote.example>\nSubject: e2e\n\nbody\n")
    ok(sendmail(base, "-t", input=msg))
    wait_done(srv, base)
    got = delivered(out)
    assert sorted(got) == ["bob@test.example", "joe@test.example"]
    for sender, stored in got.values():
        assert sender == "root@mx.test.example"
        head = stored.split("\n\n", 1)[0]
        assert "Bcc:" not in head and "Envelope-To:" not in head
        assert "evil" not in stored
        assert "\nSubject: e2e\n" in "\n" + head + "\n"
        assert stored.endswith("\n\nbody\n")


def test_e2e_mail_bcc(server_factory, base):
    srv, out = e2e_server(server_factory, base)
    # Unqualified: the envelope is qualified by the server, the To: field
    # by mail with the same (first local) domain.
    ok(mail(base, "-s", "Grüße", "-b", "bob", "joe", input="hi\n"))
    wait_done(srv, base)
    got = delivered(out)
    assert sorted(got) == ["bob@test.example", "joe@test.example"]
    for sender, stored in got.values():
        assert sender == "root@mx.test.example"
        head = stored.split("\n\n", 1)[0]
        assert "Bcc" not in head and "bob" not in head
        assert "\nTo: joe@test.example\n" in "\n" + head + "\n"
        assert stored.endswith("\n\nhi\n")


def test_e2e_setgid_submitter(server_factory, base, tmpdir755):
    gid = submit_gid()   # before the server sets Submitted/ up
    srv, out = e2e_server(server_factory, base)
    st = os.stat(submitted(base))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
        (DAEMON.pw_uid, gid, 0o1730)
    progs = install_programs(os.path.join(tmpdir755, "bin"), gid)
    ok(sendmail(base, "joe", input="Subject: from nobody\n\nbody\n",
                user=NOBODY, program=progs["sendmail"]))
    wait_done(srv, base)
    got = delivered(out)
    assert list(got) == ["joe@test.example"]
    sender, stored = got["joe@test.example"]
    assert sender == "nobody@mx.test.example"
    head = stored.split("\n\n", 1)[0]
    assert f"Received: from local user {NOBODY.pw_uid}" in head
    assert "\nFrom: nobody <nobody@mx.test.example>\n" in head
