#!/usr/bin/env python3
"""Webhooks: how fast queued events are delivered to a local receiver, and what the outbox adds
to the writes that fill it. Release builds of `roster serve` and of
`examples/webhook_receiver.rs` (which checks every signature), loopback only, bounded.

    python3 bench/webhooks.py [--events N] [--patches P] [--import-rows R] [--previous BINARY]
                              [--skip-postgres]

For each backend:
- delivery: N contact.created events are queued by an instance that does not deliver
  (ROSTER_DELIVER_WEBHOOKS=false); then one instance that delivers starts, and the time until
  the receiver holds all N (each once, every signature good) gives deliveries per second. The
  receiver's own ceiling is measured in the same run: wrk posting to it with as many connections
  as the deliverer uses.
- outbox cost: P PATCHes each adding 100 new numbers to a group, on a fresh database each time,
  with a webhook subscribed to group.changed and without one (and with `--previous`, by the
  previous release build, which had no outbox), each variant twice in opposite orders; and
  `roster import` of R rows into a new group, into a fresh database with a webhook subscribed to
  import.finished and into one without.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import ROOT, ROSTER, free_port, run, start_postgres  # noqa: E402
generate = importlib.import_module("import").generate  # a module named after a keyword
timed = importlib.import_module("import").timed

RECEIVER = os.path.join(ROOT, "target", "release", "examples", "webhook_receiver")
CONCURRENCY = 64


def call(base, token, method, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def wait_ready(base):
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    raise SystemExit(f"{base} did not become ready")


def serve(database, port, deliver, binary=ROSTER):
    env = {**os.environ, "RUST_LOG": "warn", "ROSTER_DATABASE_URL": database,
           "ROSTER_LISTEN": f"127.0.0.1:{port}", "ROSTER_WEBHOOK_ALLOW_PRIVATE": "true",
           "ROSTER_DELIVER_WEBHOOKS": "true" if deliver else "false",
           "ROSTER_WEBHOOK_CONCURRENCY": str(CONCURRENCY)}
    server = subprocess.Popen([binary, "serve", "--sender", "off"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}")
    return server


def stop(process):
    process.terminate()
    process.wait(timeout=60)


def new_plan(database):
    plan = json.loads(run([ROSTER, "plans", "create", "Bench", "--database", database]).stdout)
    return plan["service_plan_id"], plan["api_token"]


def receiver_counts(receiver_base):
    with urllib.request.urlopen(receiver_base + "/count", timeout=10) as response:
        return json.loads(response.read())


def in_threads(count, threads, work):
    """Runs work(i) for i in range(count) over `threads` threads."""
    def worker(start):
        for i in range(start, count, threads):
            work(i)
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def receiver_ceiling(receiver_base, seconds=5):
    """Posts per second the receiver takes from wrk with CONCURRENCY connections."""
    script = os.path.join(tempfile.mkdtemp(prefix="roster-wrk-"), "post.lua")
    with open(script, "w") as out:
        out.write('wrk.method = "POST"\nwrk.body = "{}"\n'
                  'wrk.headers["Content-Type"] = "application/json"\n'
                  'wrk.headers["webhook-id"] = "ceiling"\n')
    output = run(["wrk", "-t", "2", "-c", str(CONCURRENCY), "-d", f"{seconds}s", "-s", script,
                  receiver_base + "/hook"]).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"no rate in wrk's output:\n{output}")


def start_receiver():
    port = free_port()
    receiver = subprocess.Popen([RECEIVER, f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            receiver_counts(base)
            return receiver, base
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    raise SystemExit("the receiver did not start")


def delivery(name, database, events):
    plan, token = new_plan(database)
    # The ceiling on a receiver of its own, so that its unsigned posts count nowhere else.
    spare, spare_base = start_receiver()
    try:
        ceiling = receiver_ceiling(spare_base)
    finally:
        spare.terminate()
        spare.wait()
    receiver, receiver_base = start_receiver()
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        queueing = serve(database, port, deliver=False)
        webhook = call(base, token, "POST", "/api/webhooks",
                       {"url": receiver_base + "/hook", "events": ["contact.created"]})
        request = urllib.request.Request(receiver_base + "/secret", method="PUT",
                                         data=webhook["secret"].encode())
        urllib.request.urlopen(request, timeout=10).read()
        start = time.perf_counter()
        in_threads(events, 8, lambda i: call(base, token, "POST", "/api/contacts",
                                             {"phone": f"+1415{5000000 + i:07d}"}))
        queued_seconds = time.perf_counter() - start
        stop(queueing)
        before = receiver_counts(receiver_base)["received"]
        start = time.perf_counter()
        delivering = serve(database, port, deliver=True)
        deadline = start + 600
        while True:
            counts = receiver_counts(receiver_base)
            if counts["received"] - before >= events or time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        time.sleep(0.5)
        counts = receiver_counts(receiver_base)
        stop(delivering)
        delivered = counts["ids"]
        rate = delivered / seconds
        print(f"| {name} | {events:,} | {queued_seconds:.1f} s | {seconds:.2f} s | {rate:,.0f}/s "
              f"| {ceiling:,.0f}/s | {rate / ceiling:.2f} | "
              f"{counts['received'] - before - delivered} | {counts['bad_signatures']} |",
              flush=True)
    finally:
        receiver.terminate()
        receiver.wait()


def patch_run(binary, database, hooked, count):
    """Milliseconds per PATCH adding 100 new numbers to a group, `count` of them, with or
    without a webhook subscribed to group.changed (deliveries are not attempted meanwhile)."""
    run([binary, "migrate", "--database", database])
    plan = json.loads(run([binary, "plans", "create", "Bench", "--database", database]).stdout)
    token = plan["api_token"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(database, port, deliver=False, binary=binary)
    try:
        if hooked:
            call(base, token, "POST", "/api/webhooks",
                 {"url": "http://127.0.0.1:9/hook", "events": ["group.changed"]})
        group = call(base, token, "POST", "/api/contactgroups", {"name": "Patched"})["id"]
        total = 0.0
        for n in range(count):
            numbers = [f"+1212{2000000 + n * 100 + k:07d}" for k in range(100)]
            start = time.perf_counter()
            call(base, token, "PATCH", f"/api/contactgroups/{group}", {"add": numbers})
            total += time.perf_counter() - start
        return total / count * 1000
    finally:
        stop(server)


def patches(name, make_database, count, previous):
    """The three variants twice, in opposite orders, each on a fresh database."""
    variants = [("this build, no webhook", ROSTER, False), ("this build, a webhook", ROSTER, True)]
    if previous:
        variants.insert(0, ("previous build", previous, False))
    times = {label: [] for label, _, _ in variants}
    for repeat in range(2):
        for label, binary, hooked in (variants if repeat == 0 else variants[::-1]):
            times[label].append(patch_run(binary, make_database(), hooked, count))
    mean = {label: sum(values) / len(values) for label, values in times.items()}
    plain = mean["this build, no webhook"]
    for label, _, _ in variants:
        versus = f"{(mean[label] / plain - 1) * 100:+.1f}%"
        if previous:
            versus += f" / {(mean[label] / mean['previous build'] - 1) * 100:+.1f}%"
        print(f"| {name}: PATCH adding 100 numbers (x{count}, twice) | {label} | "
              f"{mean[label]:.2f} ms | {versus} |", flush=True)


def import_cost(name, make_database, csv_path, rows):
    seconds = {}
    for hooked in (False, True):
        database = make_database()
        plan, token = new_plan(database)
        if hooked:
            port = free_port()
            server = serve(database, port, deliver=False)
            call(f"http://127.0.0.1:{port}", token, "POST", "/api/webhooks",
                 {"url": "http://127.0.0.1:9/hook", "events": ["import.finished"]})
            stop(server)
        seconds[hooked], _ = timed([ROSTER, "import", csv_path, "--plan", plan, "--group",
                                    "Bench import", "--database", database],
                                   env={**os.environ, "RUST_LOG": "warn"})
    cost = seconds[True] / seconds[False] - 1
    print(f"| {name}: roster import of {rows:,} rows | {seconds[False]:.1f} s | "
          f"{seconds[True]:.1f} s | {cost * 100:+.1f}% |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--previous", help="a release build of the previous version, measured "
                                           "beside this one in the PATCH comparison")
    args = parser.parse_args()
    print("building roster and the receiver (release)...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "roster",
                    "--example", "webhook_receiver"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="roster-webhooks-")
    os.chmod(workdir, 0o755)
    pg_server, pg_url = (None, None)
    if not args.skip_postgres:
        pg_server, pg_url = start_postgres(workdir)
    databases = [0]

    def sqlite_database():
        databases[0] += 1
        return f"sqlite://{workdir}/bench{databases[0]}.db"

    def postgres_database():
        databases[0] += 1
        name = f"bench{databases[0]}"
        run(["psql", pg_url, "-q", "-c", f"CREATE DATABASE {name}"])
        return pg_url.rsplit("/", 1)[0] + "/" + name

    backends = [("SQLite", sqlite_database)]
    if pg_url:
        backends.append(("PostgreSQL", postgres_database))
    csv_path = os.path.join(workdir, "import.csv")
    generate(csv_path, args.import_rows)
    try:
        print("| backend | events | queued in | delivered in | deliveries/s | receiver alone "
              "(wrk) | ratio | repeats | bad signatures |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, make in backends:
            delivery(name, make(), args.events)
        print()
        versus = "against no webhook" + (" / against the previous build" if args.previous else "")
        print(f"| write | build | per request | {versus} |")
        print("|---|---|---|---|")
        for name, make in backends:
            patches(name, make, args.patches, args.previous)
        print()
        print("| write | without a webhook | with one | outbox cost |")
        print("|---|---|---|---|")
        for name, make in backends:
            import_cost(name, make, csv_path, args.import_rows)
    finally:
        if pg_server:
            pg_server.terminate()
            pg_server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
