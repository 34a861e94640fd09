"""The report builder's output read by Python's email package (dsn.py):
the sample reports test_report writes (--samples DIR), field by field."""
import email
import email.policy
import os
import subprocess

import pytest

from conftest import BUILD
from dsn import ReportError, parse_report

SAMPLES = ["failed-full", "failed-headers", "failed-over-limit", "mixed",
           "delayed", "hostile"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    exe = os.path.join(BUILD, "tests", "unit", "test_report")
    subprocess.run([exe, "--samples", str(d)], check=True, timeout=60)
    out = {}
    for name in SAMPLES:
        with open(d / (name + ".eml"), "rb") as f:
            out[name] = f.read()
    return out


def test_every_sample_parses(reports):
    for name, data in reports.items():
        r = parse_report(data)
        h = r["headers"]
        assert h["from"] == "Mail Delivery System <MAILER-DAEMON@mx.example.com>"
        assert h["to"] == "alice@example.org"
        assert h["auto-submitted"] == "auto-replied"
        assert h["mime-version"] == "1.0"
        assert h["message-id"] == "<1795428300.r1@mx.example.com>"
        assert h["date"] == "Mon, 23 Nov 2026 10:05:00 +0000"
        assert r["message"]["reporting-mta"] == "dns; mx.example.com"
        assert r["message"]["arrival-date"] == "Mon, 23 Nov 2026 09:05:00 +0000"
        assert "This is the mail system at host mx.example.com." in r["text"]
        assert r["boundary"].encode() not in r["returned"], name


def test_failed_full(reports):
    r = parse_report(reports["failed-full"])
    assert r["headers"]["subject"] == "Undelivered Mail Returned to Sender"
    assert r["headers"]["in-reply-to"] == "<orig.1@example.org>"
    assert r["message"]["original-envelope-id"] == "QQ+id"
    assert r["recipients"] == [{
        "original-recipient": "rfc822;Bob+1@example.com",
        "final-recipient": "rfc822;bob@example.com",
        "action": "failed",
        "status": "5.1.1",
        "remote-mta": "dns; relay.example.net",
        "diagnostic-code": "smtp; 550 5.1.1 <bob@example.com>: no such user",
        "last-attempt-date": "Mon, 23 Nov 2026 10:04:00 +0000",
    }]
    assert r["returned_type"] == "message/rfc822"
    assert r["returned"].endswith(b"\n\nHello Bob.\n")
    inner = r["parts"][2].get_payload(0)
    assert inner["Subject"] == "hello"
    assert "550 5.1.1 <bob@example.com>: no such user" in r["text"]


def test_failed_headers_and_over_limit(reports):
    for name in ("failed-headers", "failed-over-limit"):
        r = parse_report(reports[name])
        assert r["returned_type"] == "text/rfc822-headers"
        assert r["returned"].startswith(b"Return-Path: <alice@example.org>\n")
        assert b"Hello Bob" not in r["returned"]
        hdr = email.message_from_bytes(r["returned"],
                                       policy=email.policy.compat32)
        assert hdr["Subject"] == "hello"
    r = parse_report(reports["failed-over-limit"])
    assert "larger than 10 bytes: only its header is attached." in r["text"]


def test_mixed(reports):
    r = parse_report(reports["mixed"])
    assert r["headers"]["subject"] == "Undelivered Mail Returned to Sender"
    rc = r["recipients"]
    assert [x["action"] for x in rc] == ["failed", "delivered", "relayed"]
    assert [x["final-recipient"] for x in rc] == [
        "rfc822;bob@example.com", "rfc822;carol@example.com",
        "rfc822;dave@example.com"]
    assert "diagnostic-code" not in rc[1]
    assert rc[2]["diagnostic-code"] == \
        "X-mailpipe; relayed to a host without DSN"
    assert "original-recipient" not in rc[1]


def test_delayed(reports):
    r = parse_report(reports["delayed"])
    assert r["headers"]["subject"] == "Delayed Mail (still being retried)"
    (rc,) = r["recipients"]
    assert rc["action"] == "delayed"
    assert rc["status"] == "4.4.1"
    assert rc["will-retry-until"] == "Fri, 27 Nov 2026 10:05:00 +0000"
    # a delay warning returns only the header, whatever RET says
    assert r["returned_type"] == "text/rfc822-headers"
    assert "WARNING ONLY" in r["text"]


def test_hostile(reports):
    r = parse_report(reports["hostile"])
    (rc,) = r["recipients"]
    assert rc["diagnostic-code"] == \
        "X-mailpipe; exit 67 (EX_NOUSER): caf\\x{00E9} [0m"
    assert "original-envelope-id" not in r["message"]
    assert "exit 67 (EX_NOUSER): caf\u00e9\ufffd\ufffd[0m" in r["text"]
    assert r["text_cte"] == "quoted-printable"
    assert r["returned_type"] == "message/rfc822"
    assert r["returned_cte"] == "8bit"
    assert r["returned"].endswith(b"\n\nbody ? \xff?\n")
    assert r["headers"]["content-transfer-encoding"] == "8bit"


def test_parse_report_refuses_broken_reports(reports):
    good = reports["failed-full"]
    with pytest.raises(ReportError):
        parse_report(good.replace(b"multipart/report", b"multipart/mixed"))
    with pytest.raises(ReportError):
        parse_report(good.replace(b"Hello Bob.", b"Hello\0Bob."))
    b = parse_report(good)["boundary"].encode()
    with pytest.raises(ReportError):
        parse_report(good.replace(b"\n--" + b + b"--\n", b"\n"))
