#!/usr/bin/env python3
"""Sending at scale: resolving a 1,000,000-member group with two overlapping child groups,
streaming its members, and adding 100,000 numbers to a 1,000,000-member group, on SQLite and on
PostgreSQL, against a release build of `roster serve` (log sender).

    python3 bench/sending.py [--contacts N] [--skip-postgres] [--skip-sqlite]
                             [--postgres-setting NAME=VALUE ...] [--keep]

Contacts and memberships are loaded with the raw tools (`sqlite3`, `psql`) into the schema
`roster migrate` creates. The group G has 100,000 direct members and two child groups: C1 with
contacts 0–60% and C2 with 40–100% (overlapping by a fifth). 5% of the contacts are opted out, so
G resolves to about 95% of N. 100,000 contacts more are loaded, in no group, to be added to a
group of N. Beside each figure, the raw tool reads in the same run, to /dev/null, what Roster
reads to resolve G (see raw_query). For the additions, the floor is the raw tool making the same
writes into Roster's schema (its indexes and foreign keys) for a second group of N,
from a file of the numbers (see raw_additions).

    python3 bench/sending.py --skip-sqlite --postgres-setting shared_buffers=4GB

runs the PostgreSQL part alone with the server's settings changed.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import (  # noqa: E402  (a sibling script, not a package)
    ROOT, ROSTER, free_port, generate, load_postgres, load_sqlite, roster, run, start_postgres,
)


def call(base, token, method, path, body=None, accept="application/json"):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": accept,
    })
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = response.read()
    elapsed = time.perf_counter() - start
    if accept == "application/json":
        return elapsed, json.loads(payload) if payload else None
    return elapsed, payload


def membership_sql(plan, groups, n):
    """Memberships of the bench groups as INSERT … SELECT over the contacts' creation order."""
    g, c1, c2, big, big_raw = groups
    rows = [
        (g, 0, n // 10),
        (c1, 0, n * 6 // 10),
        (c2, n * 4 // 10, n),
        (big, 0, n),
        (big_raw, 0, n),
    ]
    statements = []
    for group, lo, hi in rows:
        statements.append(
            f"INSERT INTO group_members (grp, contact) SELECT {group_key(plan, group)}, key "
            f"FROM contacts WHERE plan = {plan_key(plan)} "
            f"AND created_at >= {1_700_000_000_000 + lo} AND created_at < {1_700_000_000_000 + hi};")
    statements.append(
        "UPDATE contact_groups SET member_count = (SELECT COUNT(*) FROM group_members m "
        "WHERE m.grp = contact_groups.key), "
        "size = (SELECT COUNT(*) FROM group_members m WHERE m.grp = contact_groups.key) "
        f"WHERE plan_id = '{plan}';")
    statements.append(
        f"UPDATE contact_groups SET size = {n} WHERE plan_id = '{plan}' AND id = '{g}';")
    return "\n".join(statements)


def plan_key(plan):
    return f"(SELECT key FROM plans WHERE id = '{plan}')"


def group_key(plan, group):
    return f"(SELECT key FROM contact_groups WHERE plan_id = '{plan}' AND id = '{group}')"


def raw_query(plan, groups, merged):
    """What Roster reads to resolve G: one range of contact keys per group (G, C1, C2), merged,
    then each key's number, opted-out contacts left out. SQLite merges the ranges itself (the
    very statement Roster runs); on PostgreSQL Roster merges the ranges as it reads them a page
    at a time and looks the numbers up a chunk at a time, so the raw tool reads each range in
    order with its numbers, one after another, without the merge."""
    g, c1, c2 = groups[:3]
    if merged:
        ranges = [f"SELECT contact FROM group_members WHERE grp = {group_key(plan, group)}"
                  for group in (g, c1, c2)]
        return ("SELECT c.phone FROM (" + " UNION ".join(ranges) + " ORDER BY 1) AS u "
                "JOIN contacts c ON c.key = u.contact WHERE NOT c.opted_out")
    # PostgreSQL finds a contact by plan and key (its primary key since migration 32).
    return " UNION ALL ".join(
        f"(SELECT c.phone FROM group_members m JOIN contacts c "
        f"ON c.plan = {plan_key(plan)} AND c.key = m.contact "
        f"WHERE m.grp = {group_key(plan, group)} AND NOT c.opted_out ORDER BY m.contact)"
        for group in (g, c1, c2))


EXISTING = 100_000  # contacts loaded beyond N, in no group


def existing_numbers(n):
    return [f"+49151{10_000_000 + n + i}" for i in range(EXISTING)]


def raw_additions(workdir, plan, group, n):
    """The writes of the two additions, as the raw tool makes them from files: memberships of
    the existing contacts, then contacts for 100,000 other new numbers and their memberships.
    Returns (file, its columns, statements) for each; the files are written to workdir."""
    existing = os.path.join(workdir, "existing.csv")
    with open(existing, "w") as out:
        out.writelines(number + "\n" for number in existing_numbers(n))
    new = os.path.join(workdir, "new.csv")
    with open(new, "w") as out:
        for i in range(EXISTING):
            # 0: the stored code of `mobile` (NumberType::code). Contacts store an id as 16
            # bytes (migration 30); 16 ASCII digits are such bytes, in order.
            out.write(f"{10_000_000 + i:016d},+4917{20_000_000 + i},0,DE\n")
    members = (f"INSERT INTO group_members (grp, contact) SELECT {group_key(plan, group)}, c.key "
               f"FROM contacts c JOIN adding a ON a.phone = c.phone WHERE c.plan = {plan_key(plan)};")
    contacts = ("INSERT INTO contacts (plan, id, phone, number_type, country, created_at, "
                f"modified_at) SELECT {plan_key(plan)}, {{ID_BYTES}}, phone, CAST(number_type AS SMALLINT), country, 1800000000000, "
                "1800000000000 FROM adding;")
    return [
        (existing, "phone", [members]),
        (new, "id, phone, number_type, country", [contacts, members]),
    ]


def send_and_wait(base, token, body):
    """Creates a batch and returns it once sent."""
    _, batch = call(base, token, "POST", "/api/batches", body)
    while True:
        _, batch = call(base, token, "GET", f"/api/batches/{batch['id']}")
        if batch["status"] in ("sent", "failed"):
            break
        time.sleep(0.05)
    assert batch["status"] == "sent", batch
    return batch


def bench_backend(name, database, plan, token, n, raw):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="roster-send-")
    log = os.path.join(workdir, "messages.jsonl")
    server = subprocess.Popen([ROSTER, "serve", "--listen", f"127.0.0.1:{port}", "--database",
                               database, "--sender-log", log, "--poll-ms", "10"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz")
                break
            except OSError:
                time.sleep(0.05)
        groups = []
        for label in ["G", "C1", "C2", "Big", "Big (raw tool)"]:
            _, group = call(base, token, "POST", "/api/contactgroups", {"name": label})
            groups.append(group["id"])
        g, c1, c2, big, big_raw = groups
        call(base, token, "PATCH", f"/api/contactgroups/{g}", {"child_groups": [c1, c2]})
        raw["load_memberships"](membership_sql(plan, groups, n))

        # Streaming the group's members (own and children's, distinct).
        elapsed, body = call(base, token, "GET", f"/api/contactgroups/{g}/members",
                             accept="application/x-ndjson")
        streamed = body.count(b"\n")
        raw_dump = raw["time"](raw_query(plan, groups, raw["merged"]))

        # Resolution at send time, then the hand-over to the log sender.
        batch = send_and_wait(base, token, {"to": [g], "body": "Bench"})
        resolve_ms = iso_ms(batch["resolved_at"]) - iso_ms(batch["created_at"])
        send_ms = iso_ms(batch["completed_at"]) - iso_ms(batch["resolved_at"])
        recipients = batch["recipient_count"]
        elapsed_recipients, body = call(base, token, "GET", f"/api/batches/{batch['id']}/recipients",
                                        accept="application/x-ndjson")
        assert body.count(b"\n") == recipients

        # The same group with a personalized body (each contact's first name, looked up at
        # send time) and smart encoding.
        personalized = {
            "to": [g], "body": "Hi ${first_name}, your code is ${code} — see you soon…",
            "encoding": "smart",
            "parameters": {"first_name": {"default": "there"}, "code": {"default": "SAVE10"}}}
        personal = send_and_wait(base, token, personalized)
        assert personal["recipient_count"] == recipients, personal
        personal_resolve_ms = iso_ms(personal["resolved_at"]) - iso_ms(personal["created_at"])
        personal_send_ms = iso_ms(personal["completed_at"]) - iso_ms(personal["resolved_at"])

        # Again with the plan's frequency cap (3 in 7 days) and quiet hours on, in a window
        # twelve hours away in Berlin, where the numbers are: every number's zones are looked up
        # and its chunk sorted by them, and none is held. Each recipient had the two batches
        # above, so none can be over the cap, which Roster sees from the count of batches.
        away = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Berlin")) + datetime.timedelta(hours=12)
        call(base, token, "PUT", "/api/settings/sending", {
            "frequency_cap": {"messages": 3, "days": 7},
            "quiet_hours": {"start": away.strftime("%H:%M"),
                            "end": (away + datetime.timedelta(minutes=1)).strftime("%H:%M")}})
        ruled = send_and_wait(base, token, personalized)
        assert ruled["recipient_count"] == recipients, ruled
        ruled_resolve_ms = iso_ms(ruled["resolved_at"]) - iso_ms(ruled["created_at"])
        ruled_send_ms = iso_ms(ruled["completed_at"]) - iso_ms(ruled["resolved_at"])
        # Then a cap that must count: 4 in 7 days after a small batch to G's first 1,000
        # contacts, so that every number of the period's four batches (2.85 million) is read and
        # counted, and the small batch's recipients, at four, are left out.
        call(base, token, "PUT", "/api/settings/sending", {})
        few = send_and_wait(base, token, {
            "to": [f"+49151{10_000_000 + i}" for i in range(1000)], "body": "Bench"})
        call(base, token, "PUT", "/api/settings/sending", {
            "frequency_cap": {"messages": 4, "days": 7},
            "quiet_hours": {"start": away.strftime("%H:%M"),
                            "end": (away + datetime.timedelta(minutes=1)).strftime("%H:%M")}})
        counted = send_and_wait(base, token, personalized)
        assert counted["recipient_count"] == recipients - few["recipient_count"], counted
        counted_resolve_ms = iso_ms(counted["resolved_at"]) - iso_ms(counted["created_at"])
        call(base, token, "PUT", "/api/settings/sending", {})

        # Adding 100,000 numbers to a group of N: contacts that exist (the 100,000 loaded
        # beyond N), then numbers that are no contact yet.
        add_existing_s, _ = call(base, token, "PATCH", f"/api/contactgroups/{big}",
                                 {"add": existing_numbers(n)})
        numbers = [f"+4916{20_000_000 + i}" for i in range(EXISTING)]
        add_s, group = call(base, token, "PATCH", f"/api/contactgroups/{big}", {"add": numbers})
        # The same writes by the raw tool, to the group of N it loaded beside.
        floor_existing_s, floor_new_s = (
            raw["write"](path, columns, statements)
            for path, columns, statements in raw_additions(workdir, plan, big_raw, n))

        print(f"\n{name}: G resolves to {recipients} of {n} contacts (opted-out left out)")
        print("| operation | roster | raw tool, same query | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| resolve G at send time (created → resolved, recorded) | {resolve_ms:.0f} ms | "
              f"{raw_dump * 1000:.0f} ms | {resolve_ms / (raw_dump * 1000):.2f} |")
        print(f"| stream G's members over HTTP | {streamed / elapsed / 1e6:.2f} M numbers/s "
              f"({elapsed * 1000:.0f} ms) | {recipients / raw_dump / 1e6:.2f} M/s | "
              f"{elapsed / raw_dump:.2f} |")
        print(f"| stream the batch's recorded recipients | {recipients / elapsed_recipients / 1e6:.2f}"
              f" M numbers/s | | |")
        print(f"| hand {recipients} recipients to the log sender (10,000 per chunk, fsync each) | "
              f"{send_ms:.0f} ms ({recipients / send_ms * 1000 / 1e6:.2f} M/s) | | |")
        print(f"| resolve G with a personalized body (first name, parameters, smart encoding) | "
              f"{personal_resolve_ms:.0f} ms | plain: {resolve_ms:.0f} ms | "
              f"{personal_resolve_ms / resolve_ms:.2f} |")
        print(f"| hand {recipients} personalized messages to the log sender | "
              f"{personal_send_ms:.0f} ms ({recipients / personal_send_ms * 1000 / 1e6:.2f} M/s) | "
              f"plain: {send_ms:.0f} ms | {personal_send_ms / send_ms:.2f} |")
        print(f"| resolve G personalized, with a frequency cap and quiet hours on | "
              f"{ruled_resolve_ms:.0f} ms | plain: {resolve_ms:.0f} ms | "
              f"{ruled_resolve_ms / resolve_ms:.2f} |")
        print(f"| hand {recipients} of those messages to the log sender | "
              f"{ruled_send_ms:.0f} ms ({recipients / ruled_send_ms * 1000 / 1e6:.2f} M/s) | "
              f"plain: {send_ms:.0f} ms | {ruled_send_ms / send_ms:.2f} |")
        print(f"| the same, when the cap must count the period's "
              f"{(3 * recipients + few['recipient_count']) / 1e6:.2f} M recorded numbers ({few['recipient_count']} left out) | "
              f"{counted_resolve_ms:.0f} ms | plain: {resolve_ms:.0f} ms | "
              f"{counted_resolve_ms / resolve_ms:.2f} |")
        print(f"| add 100,000 numbers of existing contacts to a group of {n} | "
              f"{add_existing_s * 1000:.0f} ms | floor: {floor_existing_s * 1000:.0f} ms | "
              f"{add_existing_s / floor_existing_s:.2f} |")
        print(f"| add 100,000 new numbers (creating their contacts) to a group of {n + EXISTING} | "
              f"{add_s * 1000:.0f} ms (size now {group['size']}) | floor: "
              f"{floor_new_s * 1000:.0f} ms | {add_s / floor_new_s:.2f} |")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def iso_ms(text):
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def sqlite_raw(db):
    def load(sql):
        # The server beside it writes too (claims): wait for the lock instead of failing.
        run(["sqlite3", db], input=".timeout 30000\n" + sql + "\nANALYZE;")

    def timed(sql):
        start = time.perf_counter()
        subprocess.run(["sqlite3", "-cmd", ".timeout 30000", db, sql], check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    def write(path, columns, statements):
        # Roster's connections enforce the schema's foreign keys; the CLI does when asked.
        typed = ", ".join(f"{column} TEXT" for column in columns.split(", "))
        script = (".timeout 30000\nPRAGMA foreign_keys = ON;\n"
                  f"CREATE TEMP TABLE adding ({typed});\n"
                  f".mode csv\n.import {path} adding\nBEGIN;\n" + "\n".join(statements)
                  + "\nCOMMIT;\n").replace("{ID_BYTES}", "CAST(id AS BLOB)")
        start = time.perf_counter()
        run(["sqlite3", db], input=script)
        return time.perf_counter() - start
    return {"load_memberships": load, "time": timed, "write": write, "merged": True}


def postgres_raw(url):
    def load(sql):
        run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url], input=sql + "\nANALYZE;")

    def timed(sql):
        start = time.perf_counter()
        subprocess.run(["psql", "-q", url, "-c", f"\\copy ({sql}) TO '/dev/null'"], check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    def write(path, columns, statements):
        typed = ", ".join(f'{column} TEXT COLLATE "C"' for column in columns.split(", "))
        script = (f"CREATE TEMP TABLE adding ({typed});\n"
                  f"\\copy adding FROM '{path}' WITH (FORMAT csv)\n"
                  "BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;\n")
        script = script.replace("{ID_BYTES}", "convert_to(id, 'UTF8')")
        start = time.perf_counter()
        run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url], input=script)
        return time.perf_counter() - start
    return {"load_memberships": load, "time": timed, "write": write, "merged": False}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--postgres-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the throwaway PostgreSQL server (repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the SQLite database (its path is printed) for inspection")
    args = parser.parse_args()
    print("building roster (release)...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="roster-bench-")
    os.chmod(workdir, 0o755)
    pg_server = None
    try:
        csv_path = os.path.join(workdir, "contacts.csv")
        sqlite_db = os.path.join(workdir, "bench.db")
        sqlite_url = f"sqlite://{sqlite_db}"
        plan = json.loads(roster("plans", "create", "Bench", database=sqlite_url))
        # 100,000 contacts beyond N, in no group, for the "add existing contacts" figure.
        print(f"# Sending, {args.contacts} contacts in one plan")
        if not args.skip_sqlite:
            generate(csv_path, plan["service_plan_id"], args.contacts + EXISTING)
            os.chmod(csv_path, 0o644)
            load_sqlite(sqlite_db, csv_path)
            bench_backend("SQLite", sqlite_url, plan["service_plan_id"], plan["api_token"],
                          args.contacts, sqlite_raw(sqlite_db))
        if not args.skip_postgres:
            pg_server, pg_url = start_postgres(workdir, args.postgres_setting)
            if args.postgres_setting:
                print(f"\nPostgreSQL settings: {', '.join(args.postgres_setting)}")
            if pg_url is None:
                print("\n*** PostgreSQL binaries not found: PostgreSQL part skipped ***")
                return
            pg_plan = json.loads(roster("plans", "create", "Bench", database=pg_url))
            generate(csv_path, pg_plan["service_plan_id"], args.contacts + EXISTING)
            os.chmod(csv_path, 0o644)
            load_postgres(pg_url, csv_path)
            bench_backend("PostgreSQL", pg_url, pg_plan["service_plan_id"], pg_plan["api_token"],
                          args.contacts, postgres_raw(pg_url))
    finally:
        if pg_server is not None:
            pg_server.terminate()
            pg_server.wait()
        if args.keep:
            print(f"kept {sqlite_db}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
