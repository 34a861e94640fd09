"""Bounded memory (issue 11 point 3): a 100 MiB local submission, and ten
SMTP sessions sending 20 MiB each at once, go through the real server
while its resident memory stays far below the size of the messages. Uses bench/memory's own load and
measurement (the full benchmark is four 200 MiB files and 20 SMTP
clients; docs/BENCHMARKS.md "memory")."""
import importlib.machinery
import importlib.util
import json
import os
import re

import pytest

from conftest import BUILD, SOURCE

LIMIT_KIB = 64 * 1024


def load_bench():
    path = os.path.join(SOURCE, "bench", "memory")
    loader = importlib.machinery.SourceFileLoader("bench_memory", path)
    spec = importlib.util.spec_from_loader("bench_memory", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def sanitized():
    """Built with ASan/UBSan: resident memory measures the sanitizer."""
    info = os.path.join(BUILD, "meson-info", "intro-buildoptions.json")
    with open(info) as f:
        opts = {o["name"]: o["value"] for o in json.load(f)}
    return opts.get("b_sanitize", "none") != "none"


def test_a_100_mib_submission_stays_under_64_mib(tmpdir755):
    bench = load_bench()
    size = 100 << 20
    res = bench.run(BUILD, files=1, size=size, clients=0, smtp_size=0,
                    root=tmpdir755, timeout=120)
    with open(os.path.join(tmpdir755, "server.log")) as f:
        log = f.read()
    assert len(re.findall(r"Submitted/big0\.sub queued id=", log)) == 1, log
    assert len(re.findall(r"result=delivered", log)) == 1, log
    if sanitized():
        pytest.skip("resident memory under a sanitizer is the sanitizer's")
    assert res["peak_kib"] < LIMIT_KIB, res


def test_ten_20_mib_smtp_messages_at_once_stay_under_64_mib(tmpdir755):
    # the SMTP half: ten sessions at once, each one message of 20 MiB
    bench = load_bench()
    res = bench.run(BUILD, files=0, size=0, clients=10, smtp_size=20 << 20,
                    root=tmpdir755, timeout=120)
    with open(os.path.join(tmpdir755, "server.log")) as f:
        log = f.read()
    assert len(re.findall(r"size=2\d{7} id=\d+ result=\"250 2\.0\.0 ok: "
                          r"queued as ", log)) == 10, log
    assert len(re.findall(r"result=delivered", log)) == 10, log
    if sanitized():
        pytest.skip("resident memory under a sanitizer is the sanitizer's")
    assert res["peak_kib"] < LIMIT_KIB, res
