#!/usr/bin/env python3
"""Import at the speed of the storage engine: a deterministic CSV of N rows (an E.164 phone and
five more columns) timed four ways in one run, each on a fresh database:

    sqlite3 .import   into a one-table schema with a primary key (the raw tool)
    roster import     into a new group, on SQLite (validating every number)
    psql \\copy        into a one-table schema with a primary key (the raw tool)
    roster import     into a new group, on PostgreSQL

    python3 bench/import.py [--rows N] [--order sequential|scattered] [--skip-postgres]
                            [--rss-rows M] [--baseline LABEL=PATH ...] [--rounds R]
                            [--old-floor PATH]

Prints each time, the ratio of roster to its raw tool (target: at most 2.0) and roster's peak
resident memory (target: under 200 MB whatever N). Beside them, the raw tool loading the same
file into Roster's own schema (contacts with their indexes, and the group's memberships, by
INSERT … SELECT from a staged copy, no validation): the floor any import into that schema pays.
`--order scattered` writes the same rows in an order scattered over the numbers, as a customer
list sorted by name or by customer id is: every insert into an index of numbers lands in a
different place. Each `--baseline` is another build of roster (e.g. the previous release) importing the same file
into a fresh database of its own in the same run; every build's database is then measured: bytes
per row on SQLite (the file) and on PostgreSQL (each table with its indexes), then bytes per
contact and per membership once vacuumed (SQLite: `dbstat`; PostgreSQL: after VACUUM FULL).
With `--rounds R` each build imports the file R times, the builds taking turns in an order
reversed every other round, and the median is reported with every time (the floors too are timed
R times in turns): on a noisy machine a single import of the same code varied by 10–17% depending
on whether it ran first. `--old-floor PATH` (the last build before storage v2, 89ca30b) also times
the floor on the schema that build migrates to: the old floor ÷ the floor is what the new schema
alone gives an importer that validates nothing.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import ROOT, ROSTER, run, start_postgres  # noqa: E402

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
        "Perlman", "Torvalds"]
CITIES = ["London", "Zürich", "New York", "São Paulo", "Lagos", "Mumbai", "Tokyo", "Sydney"]


def generate(path, rows, scattered=False):
    """Distinct valid US numbers (+1 415 2xx xxxx, …): the same file for the same N. Scattered,
    the line j holds row i = j × stride mod N, the stride a number coprime with N near N/φ, so
    that consecutive lines are far apart and every stretch of lines spreads over all numbers."""
    stride = 1
    if scattered:
        stride = int(rows / 1.618033988749895) | 1
        while math.gcd(stride, rows) != 1:
            stride += 2
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("phone,first_name,last_name,email,city,customer_id\n")
        for line in range(rows):
            i = line * stride % rows
            area = (415, 212, 646, 718, 310, 312, 617, 206, 303, 512)[i // 8_000_000 % 10]
            exchange = 200 + (i // 10_000) % 800
            phone = f"+1{area}{exchange}{i % 10_000:04d}"
            first, last = FIRST[i % 10], LAST[(i // 10) % 10]
            out.write(f"{phone},{first},{last},{first.lower()}.{i}@example.com,"
                      f"{CITIES[i % 8]},C{i:08d}\n")


def timed(cmd, script=None, **kwargs):
    """Runs a command (fed `script` on its standard input); returns (seconds, its output)."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **kwargs)
    stdout, stderr = process.communicate(script)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({process.returncode}):\n{stdout}\n{stderr}")
    return elapsed, stdout


# The raw tool's best into Roster's schema: the file staged, then contacts and memberships by
# set-based INSERT … SELECT in one transaction (ids sequential, 16 ASCII digits as the 16 bytes a
# contact's id is stored as since migration 30; numbers not validated; every
# number of the file is `fixed_line_or_mobile`, stored as its code, 1; its names are ASCII, so
# no sort name is stored: see migration 29).
FLOOR_SQL = """
INSERT INTO contact_groups (plan_id, id, name, status, created_at, modified_at)
  VALUES ('{plan}', 'FLOOR', 'Floor', 'ACTIVE', 0, 0);
INSERT INTO contacts (plan, id, phone, first_name, last_name, email, fields, number_type,
                      country, opted_out, created_at, modified_at)
  SELECT (SELECT key FROM plans WHERE id = '{plan}'), {id}, phone, first_name, last_name, email, {fields}, 1,
         'US', false, 1, 1 FROM staged;
INSERT INTO group_members (grp, contact)
  SELECT (SELECT key FROM contact_groups WHERE plan_id = '{plan}' AND id = 'FLOOR'), key
  FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = '{plan}');
"""

# The same into the schema before storage v2 (89ca30b: text keys, the plan's id in every index,
# the number beside each membership, the sort names stored), with its own `migrate`.
OLD_FLOOR_SQL = """
INSERT INTO contact_groups (plan_id, id, name, status, created_at, modified_at)
  VALUES ('{plan}', 'FLOOR', 'Floor', 'ACTIVE', 0, 0);
INSERT INTO contacts (plan_id, id, phone, first_name, last_name, email, fields, number_type,
                      country, opted_out, created_at, modified_at, sort_name, sort_name_last)
  SELECT '{plan}', {id}, phone, first_name, last_name, email, {fields}, 'fixed_line_or_mobile',
         'US', false, 1, 1, lower(first_name || ' ' || last_name),
         lower(last_name || ' ' || first_name) FROM staged;
INSERT INTO group_members (plan_id, group_id, contact_id, phone)
  SELECT '{plan}', 'FLOOR', id, phone FROM contacts WHERE plan_id = '{plan}';
"""


def floor_sqlite(csv_path, db, old_build=None):
    """The floor, or with `old_build` (a path to 89ca30b) the old floor."""
    binary = old_build or ROSTER
    run([binary, "migrate", "--database", f"sqlite://{db}"])
    plan = json.loads(run([binary, "plans", "create", "Floor", "--database",
                           f"sqlite://{db}"]).stdout)["service_plan_id"]
    # Contacts' ids: 26 characters of text before storage v2, 16 bytes since.
    row_id = "printf('%026d', rowid)" if old_build else "CAST(printf('%016d', rowid) AS BLOB)"
    insert = (OLD_FLOOR_SQL if old_build else FLOOR_SQL).format(
        plan=plan, id=row_id, fields="json_object('city', city, 'customer_id', customer_id)")
    # Roster's connections' settings, its 16 MB page cache included (the CLI's own is 2 MB, which
    # made the floor of a scattered file a third slower than Roster's cache would).
    script = ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;\n"
              "PRAGMA cache_size=-16384;\n"
              "CREATE TEMP TABLE staged (phone, first_name, last_name, email, city, customer_id);\n"
              f".import --csv --skip 1 {csv_path} staged\n"
              f"BEGIN;\n{insert}\nCOMMIT;\n")
    return timed(["sqlite3", db], script)[0]


def floor_postgres(csv_path, url, old_build=None):
    """The floor, or with `old_build` the old floor, in the (fresh) database of `url`."""
    binary = old_build or ROSTER
    run([binary, "migrate", "--database", url])
    plan = json.loads(run([binary, "plans", "create", "Floor", "--database", url]).stdout)
    row_id = "lpad((row_number() OVER ())::text, {}, '0')"
    row_id = row_id.format(26) if old_build else f"convert_to({row_id.format(16)}, 'UTF8')"
    insert = (OLD_FLOOR_SQL if old_build else FLOOR_SQL).format(
        plan=plan["service_plan_id"], id=row_id,
        fields="json_build_object('city', city, 'customer_id', customer_id)::text")
    script = ("CREATE TEMP TABLE staged (phone text, first_name text, last_name text, "
              "email text, city text, customer_id text);\n"
              f"\\copy staged FROM '{csv_path}' CSV HEADER\n"
              f"BEGIN;\n{insert}\nCOMMIT;\n")
    return timed(["psql", url, "-q", "-v", "ON_ERROR_STOP=1"], script)[0]


def roster_import(csv_path, database, binary=ROSTER):
    run([binary, "migrate", "--database", database])
    plan = json.loads(run([binary, "plans", "create", "Bench", "--database", database]).stdout)
    seconds, report = timed([binary, "import", csv_path, "--plan", plan["service_plan_id"],
                                "--group", "Bench import", "--database", database],
                               env={**os.environ, "RUST_LOG": "warn"})
    return seconds, report


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def alternate(csv_path, builds, rounds, fresh_database):
    """Times each build's import of the file `rounds` times, the builds in turn and their order
    reversed every other round, so that a drift of the machine over the run (or whatever the
    first import pays) does not favour one build; each import into a fresh database from
    `fresh_database(index)`, the last one of each build left for the footprints. Returns, per
    build, its times and the report of its last import."""
    times = {index: [] for index in range(len(builds))}
    reports = {}
    for round_ in range(rounds):
        order = list(enumerate(builds))
        if round_ % 2:
            order.reverse()
        for index, (_, binary) in order:
            seconds, reports[index] = roster_import(csv_path, fresh_database(index), binary)
            times[index].append(seconds)
    return [(times[index], reports[index]) for index in range(len(builds))]


def floors(rounds, measure, old_build):
    """The floor's times (and with `old_build` the old floor's), `rounds` of each taking turns
    as the builds do, each by `measure(build)` into a fresh database."""
    builds = [None] + ([old_build] if old_build else [])
    times = {build: [] for build in builds}
    for round_ in range(rounds):
        for build in (reversed(builds) if round_ % 2 else builds):
            times[build].append(measure(build))
    return times[None], times[old_build] if old_build else None


def removed(path):
    """`path`, with no SQLite database there any more."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


def sqlite_bytes(path):
    """The database file's size once its write-ahead log is folded in."""
    subprocess.run(["sqlite3", path, "PRAGMA wal_checkpoint(TRUNCATE);"], check=True,
                   capture_output=True)
    return os.path.getsize(path)


def sqlite_split(path):
    """Bytes of `contacts` and of `group_members`, each table with its indexes, counted by
    `dbstat` in a vacuumed copy of the database."""
    copy = path + ".vacuumed"
    run(["sqlite3", path, f"VACUUM INTO '{copy}'"])
    out = run(["sqlite3", "-separator", " ", copy,
               "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m "
               "ON m.name = d.name WHERE m.tbl_name IN ('contacts', 'group_members') "
               "GROUP BY m.tbl_name"]).stdout
    os.remove(copy)
    return {name: int(size) for name, size in (line.split() for line in out.splitlines())}


def postgres_split(url):
    """The same on PostgreSQL, after VACUUM FULL of the two tables."""
    run(["psql", url, "-q", "-c", "VACUUM FULL contacts", "-c", "VACUUM FULL group_members"])
    return {name: size for name, size in postgres_bytes(url).items()
            if name in ("contacts", "group_members")}


def postgres_bytes(url):
    """Bytes of each table with its indexes and TOAST, and of the whole database."""
    out = run(["psql", url, "-At", "-F", " ", "-c",
               "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
               "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
               "UNION ALL SELECT '(database)', pg_database_size(current_database())"]).stdout
    return {name: int(size) for name, size in (line.split() for line in out.splitlines())}


def other_database(url, name):
    """A fresh database beside the one of `url`, and its URL."""
    run(["psql", url, "-q", "-c", f"DROP DATABASE IF EXISTS {name}"])
    run(["psql", url, "-q", "-c", f"CREATE DATABASE {name}"])
    return url.rsplit("/", 1)[0] + "/" + name


def peak_rss_of(cmd):
    """Peak RSS of one command, and the peak of its anonymous part (heap, not pages of the
    database file mapped by SQLite's mmap), in MB, read from /proc while it runs."""
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = anon = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
                    elif line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    return peak / 1024, anon / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--order", choices=("sequential", "scattered"), default="sequential",
                        help="the file's rows in the order of their numbers, or scattered")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--rss-rows", type=int, default=0,
                        help="also measure peak memory importing a file of this many rows")
    parser.add_argument("--baseline", action="append", default=[], metavar="LABEL=PATH",
                        help="another roster binary to time in the same run (repeatable)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="import the file this many times with each build, the builds "
                             "alternating, and report the median (the floors' too)")
    parser.add_argument("--old-floor", metavar="PATH",
                        help="the build before storage v2 (89ca30b): also time the floor on "
                             "its schema")
    args = parser.parse_args()
    baselines = [tuple(item.split("=", 1)) for item in args.baseline]
    print("building roster (release)...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="roster-import-")
    os.chmod(workdir, 0o755)
    csv_path = os.path.join(workdir, "contacts.csv")
    print(f"generating {args.rows} rows...", file=sys.stderr)
    generate(csv_path, args.rows, args.order == "scattered")
    os.chmod(csv_path, 0o644)
    size_mb = os.path.getsize(csv_path) / 1e6
    results = []

    # SQLite: the raw tool, then roster.
    raw_db = os.path.join(workdir, "raw.db")
    script = ("PRAGMA journal_mode=WAL;\n"
              "CREATE TABLE contacts (phone TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, "
              "email TEXT, city TEXT, customer_id TEXT);\n"
              f".import --csv --skip 1 {csv_path} contacts\n")
    raw_s, _ = timed(["sqlite3", raw_db], script)
    builds = [("this build", ROSTER)] + baselines

    def sqlite_path(index):
        return os.path.join(workdir, f"build{index}.db")

    def fresh_sqlite(index):
        return f"sqlite://{removed(sqlite_path(index))}"

    timings = alternate(csv_path, builds, args.rounds, fresh_sqlite)
    floor_runs = floors(args.rounds, lambda old: floor_sqlite(
        csv_path, removed(os.path.join(workdir, "floor.db")), old), args.old_floor)
    results.append(("SQLite", "sqlite3 .import", raw_s, median(timings[0][0]), floor_runs,
                    timings[0][1]))
    footprints = []
    splits = []
    compared = []
    for index, (label, _) in enumerate(builds):
        if index:
            compared.append(("SQLite", label, timings[index][0], timings[0][0]))
        footprints.append(("SQLite", label, sqlite_bytes(sqlite_path(index))))
        splits.append(("SQLite", label, sqlite_split(sqlite_path(index))))

    pg_server = url = None
    if not args.skip_postgres:
        pg_server, url = start_postgres(os.path.join(workdir, "pgdir"))
        if url is None:
            print("*** PostgreSQL binaries not found: PostgreSQL skipped ***", file=sys.stderr)
        else:
            # A new cluster creates its write-ahead log's files as it first fills them; runs
            # after that reuse them. Whichever import ran first paid for it (~20% of its time),
            # so an untimed import fills them before anything is timed.
            warm = other_database(url, "warm_up")
            roster_import(csv_path, warm)
            run(["psql", url, "-q", "-c", "DROP DATABASE warm_up", "-c", "CHECKPOINT"])
            run(["psql", url, "-q", "-c",
                 "CREATE TABLE raw_contacts (phone text PRIMARY KEY, first_name text, "
                 "last_name text, email text, city text, customer_id text)"])
            raw_s, _ = timed(["psql", url, "-q", "-c",
                                 f"\\copy raw_contacts FROM '{csv_path}' CSV HEADER"])
            pg_databases = {}

            def fresh_postgres(index):
                pg_databases[index] = other_database(url, f"build{index}")
                return pg_databases[index]

            timings = alternate(csv_path, builds, args.rounds, fresh_postgres)
            floor_runs = floors(args.rounds, lambda old: floor_postgres(
                csv_path, other_database(url, "floor"), old), args.old_floor)
            results.append(("PostgreSQL", "psql \\copy", raw_s, median(timings[0][0]),
                            floor_runs, timings[0][1]))
            for index, (label, _) in enumerate(builds):
                if index:
                    compared.append(("PostgreSQL", label, timings[index][0], timings[0][0]))
                footprints.append(("PostgreSQL", label, postgres_bytes(pg_databases[index])))
                splits.append(("PostgreSQL", label, postgres_split(pg_databases[index])))
    try:
        print(f"\nimport of {args.rows:,} rows ({size_mb:.0f} MB CSV: phone + 5 columns, "
              f"{args.order} order) into a new group\n")
        print(f"{'backend':<11} {'raw tool':<16} {'raw s':>7} {'roster s':>9} {'ratio':>6} "
              f"{'floor s':>8} {'roster/floor':>13}")
        for backend, tool, raw_s, roster_s, (floor_times, _), report in results:
            floor_s = median(floor_times)
            print(f"{backend:<11} {tool:<16} {raw_s:7.2f} {roster_s:9.2f} {roster_s / raw_s:6.2f} "
                  f"{floor_s:8.2f} {roster_s / floor_s:13.2f}")
        if args.old_floor:
            print(f"\n{'backend':<11} {'floor s':>8} {'old floor s':>12} {'old/floor':>10}  "
                  "(the old floor: the same SQL into the schema of --old-floor's build)")
            for backend, _, _, _, (floor_times, old_times), _ in results:
                print(f"{backend:<11} {median(floor_times):8.2f} {median(old_times):12.2f} "
                      f"{median(old_times) / median(floor_times):10.2f}")
        if args.rounds > 1:
            print("\nevery floor, in seconds, in the order of the rounds")
            for backend, _, _, _, (floor_times, old_times), _ in results:
                print(f"{backend:<11} {'floor':<20} " + " ".join(f"{t:.2f}" for t in floor_times))
                if old_times:
                    print(f"{backend:<11} {'old floor':<20} "
                          + " ".join(f"{t:.2f}" for t in old_times))
        for backend, _, _, _, _, report in results:
            created = [line for line in report.splitlines() if line.startswith("created")]
            print(f"{backend}: {created[0] if created else report.strip()}")
        if args.rounds > 1:
            print(f"\n(roster s: the median of {args.rounds} imports, the builds alternating)")
        if compared:
            print(f"\n{'backend':<11} {'baseline':<20} {'baseline s':>11} {'this s':>8} "
                  f"{'speed-up':>9}")
            for backend, label, seconds, own_s in compared:
                print(f"{backend:<11} {label:<20} {median(seconds):11.2f} {median(own_s):8.2f} "
                      f"{median(seconds) / median(own_s):9.2f}")
            if args.rounds > 1:
                print("\nevery import, in seconds, in the order of the rounds")
                shown = set()
                for backend, label, seconds, own_s in compared:
                    if backend not in shown:
                        shown.add(backend)
                        print(f"{backend:<11} {'this build':<20} "
                              + " ".join(f"{t:.2f}" for t in own_s))
                    print(f"{backend:<11} {label:<20} " + " ".join(f"{t:.2f}" for t in seconds))
        print(f"\nfootprint after importing {args.rows:,} rows into one group "
              "(bytes per row: contact and membership together)")
        for backend, label, size in footprints:
            if isinstance(size, dict):
                tables = ", ".join(f"{name} {bytes_ / args.rows:.0f}" for name, bytes_
                                   in sorted(size.items(), key=lambda item: -item[1])
                                   if name != "(database)" and bytes_ >= args.rows)
                print(f"{backend:<11} {label:<20} {size['(database)'] / args.rows:7.0f} B/row "
                      f"(tables: {tables})")
            else:
                print(f"{backend:<11} {label:<20} {size / args.rows:7.0f} B/row")
        print("\nvacuumed (SQLite: dbstat of a VACUUM INTO copy; PostgreSQL: after VACUUM FULL), "
              "each table with its indexes")
        for backend, label, split in splits:
            print(f"{backend:<11} {label:<20} "
                  f"{split.get('contacts', 0) / args.rows:7.0f} B a contact, "
                  f"{split.get('group_members', 0) / args.rows:4.0f} B a membership")
        # Peak memory of another import of the same file into a new plan (the rows all new
        # again), sampled from /proc; then of a larger file if asked.
        databases = [("SQLite", f"sqlite://{os.path.join(workdir, 'rss.db')}")]
        if len(results) > 1:
            databases.append(("PostgreSQL", url))
        files = [(args.rows, csv_path)]
        if args.rss_rows:
            big = os.path.join(workdir, "big.csv")
            print(f"generating {args.rss_rows} rows...", file=sys.stderr)
            generate(big, args.rss_rows)
            os.chmod(big, 0o644)
            files.append((args.rss_rows, big))
        print()
        for rows, path in files:
            for backend, database in databases:
                plan = json.loads(run([ROSTER, "plans", "create", "RSS", "--database",
                                       database]).stdout)
                rss, anon = peak_rss_of([ROSTER, "import", path, "--plan",
                                         plan["service_plan_id"], "--group", "RSS",
                                         "--database", database])
                print(f"peak RSS of roster import ({backend}, {rows:,} rows): {rss:.0f} MB, of "
                      f"which anonymous (heap) {anon:.0f} MB (target < 200 MB)", flush=True)
    finally:
        if pg_server is not None:
            pg_server.terminate()
            pg_server.wait()
        # Several GB at 5M rows: never left behind.
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
