"""Crash safety: the server is killed with SIGKILL at random moments while
it takes in and delivers a few hundred messages, then restarted. In the
end every message is delivered, none is lost, and duplicates are no more
than the deliveries that were in flight at each kill."""
import os
import random
import subprocess
import time

from conftest import BASE_CONFIG, install_app, message, nobody_dir, wait_for

MESSAGES = 300
KILLS = 8
PROCESSORS = 4

TALLY = r"""
    #!/bin/sh
    # tally OUT: one line "token delivery-id" per run, written at once
    token=$(sed -n 's/^X-Token: //p')
    echo "$token $DELIVERY_ID" >> "$1/tally"
"""


def tally(out):
    """[token, delivery id] of every completed run. A run that completed
    without a token got a cut message: that must never happen."""
    p = os.path.join(out, "tally")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        runs = [l.split() for l in f.read().splitlines()]
    cut = [r for r in runs if len(r) != 2]
    assert not cut, f"a program completed on a cut message: {cut}"
    return runs


def test_sigkill_at_random_moments_loses_nothing(server_factory, tmpdir755):
    seed = int(os.environ.get("MAILPIPE_CRASH_SEED", time.time_ns() % 100000))
    rnd = random.Random(seed)
    out = nobody_dir(os.path.join(tmpdir755, "out"))
    cfg = BASE_CONFIG.replace("processors = 4", f"processors = {PROCESSORS}")
    s = server_factory(config=cfg, router=f'<*> = "tally {out}"@pipe\n')
    install_app(s.base, "tally", TALLY)
    s.start()
    s.stop()
    for i in range(MESSAGES):
        s.submit(message(to=f"r{i}@test.example", extra=f"X-Token: t{i}\n"),
                 name=f"m{i:04d}")

    kills = 0
    progress = []
    for k in range(KILLS):
        s.start()
        time.sleep(rnd.uniform(0.05, 0.6))     # a random moment, not a sync
        s.kill()
        kills += 1
        progress.append(len(tally(out)))
        if len({t for t, _ in tally(out)}) == MESSAGES:
            break
    s.start()
    wait_for(lambda: len({t for t, _ in tally(out)}) == MESSAGES,
             timeout=120, what=f"all messages delivered (seed {seed})")
    s.wait_queue_empty(timeout=60)
    s.stop()

    runs = tally(out)
    tokens = {t for t, _ in runs}
    assert tokens == {f"t{i}" for i in range(MESSAGES)}, f"lost (seed {seed})"
    duplicates = len(runs) - MESSAGES
    assert duplicates <= kills * PROCESSORS, \
        f"{duplicates} duplicates after {kills} kills (seed {seed})"
    # a duplicate is always the same delivery (same DELIVERY_ID) again,
    # never the same file queued twice
    ids_per_token = {}
    for t, d in runs:
        ids_per_token.setdefault(t, set()).add(d)
    assert all(len(v) == 1 for v in ids_per_token.values()), f"seed {seed}"
    sub = os.path.join(s.base, "Submitted")
    assert [f for f in os.listdir(sub) if not f.startswith(".")] == []
    corrupt = os.path.join(s.base, "Queue", "corrupt")
    assert not os.path.exists(corrupt) or os.listdir(corrupt) == []
    # no program of ours is left running
    left = subprocess.run(["pgrep", "-f", os.path.join(s.base, "apps")],
                          capture_output=True)
    assert left.returncode == 1
    print(f"seed {seed}: {kills} kills, progress {progress}, "
          f"{duplicates} duplicates")
