"""The README's first command, as a new user would try it: scripts/demo
runs the server on the demo base directory, and `mail -s hi demo@...`
reaches the demo application."""
import os
import signal
import smtplib
import socket
import subprocess

from conftest import BUILD, SOURCE, prog, run, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_delivers_mail_to_the_demo_application(tmpdir755):
    base = os.path.join(tmpdir755, "var")
    # the demo's own config, on free ports (scripts/demo keeps a config
    # that is already there)
    os.makedirs(base)
    with open(os.path.join(SOURCE, "demo", "mailpipe.conf")) as f:
        conf = f.read()
    smtp_port = free_port()
    conf = conf.replace("listen = 127.0.0.1:2525", f"listen = 127.0.0.1:{smtp_port}")
    conf = conf.replace("http-listen = 127.0.0.1:8025",
                        f"http-listen = 127.0.0.1:{free_port()}")
    with open(os.path.join(base, "mailpipe.conf"), "w") as f:
        f.write(conf)
    log = open(os.path.join(tmpdir755, "demo.log"), "wb")
    p = subprocess.Popen([os.path.join(SOURCE, "scripts", "demo")],
                         stdout=log, stderr=subprocess.STDOUT,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                              "MAILPIPE_DEMO_BASE": base,
                              "MAILPIPE_BUILD": BUILD})
    try:
        def ready():
            with open(log.name, "rb") as f:
                text = f.read()
            assert p.poll() is None, text.decode(errors="replace")
            return b"SYSTEM major: ready" in text
        wait_for(ready, timeout=30, what="the demo server")
        r = run([prog("mail"), "-s", "hi", "demo@localhost"],
                input=b"hello demo\n", env={"MAILPIPE_BASE": base})
        assert r.returncode == 0, r.stderr
        inbox = os.path.join(base, "inbox")
        (name,) = wait_for(lambda: [f for f in os.listdir(inbox)
                                    if f.endswith(".eml")], what="delivery")
        with open(os.path.join(inbox, name)) as f:
            text = f.read()
        assert "Subject: hi\n" in text and text.endswith("\n\nhello demo\n")
        # the README's smtplib example, against the demo's listener
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
            smtp.sendmail("me@localhost", ["demo@localhost"],
                          "Subject: hi\n\nhello over SMTP\n")
        wait_for(lambda: len([f for f in os.listdir(inbox)
                              if f.endswith(".eml")]) == 2,
                 what="the SMTP delivery")
        # list-NAME@ goes to the serialised LISTS queue with one argument
        r = run([prog("mail"), "-s", "to a list", "list-news@demo.example"],
                input=b"for the list\n", env={"MAILPIPE_BASE": base})
        assert r.returncode == 0
        lists = os.path.join(inbox, "lists", "news")
        wait_for(lambda: os.path.isdir(lists) and os.listdir(lists),
                 what="list delivery")
    finally:
        p.send_signal(signal.SIGTERM)
        code = p.wait(30)
        log.close()
    assert code == 0
