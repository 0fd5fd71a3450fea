#!/usr/bin/env python3
"""Contact search at scale: times /api/contacts filters on a plan of N contacts (default
1,000,000), on SQLite and on PostgreSQL, against a release build of `roster serve`.

    python3 bench/contacts_search.py [--contacts N] [--runs R] [--skip-postgres]

The contacts are generated deterministically and loaded with the raw tools (`sqlite3 .import`,
`psql \\copy`) into the schema `roster migrate` creates, so that only the searches are timed.
Each search is run R times (default 5) over HTTP on loopback; the median is reported, beside the
time of a full scan of the plan's contacts done by the raw tool in the same run, so that a search
much faster than the scan is one that an index serves. Query plans of the main searches are
printed too.
"""

import argparse
import csv
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ROSTER_BIN runs the benchmarks against another build (e.g. the previous release, as a
# baseline in the same hour); the scripts' own loaders write the current schema, so it must be
# a build of the same schema or one whose differences they tolerate (see docs/BENCHMARKS.md).
ROSTER = os.environ.get("ROSTER_BIN") or os.path.join(ROOT, "target", "release", "roster")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
FIRST = ["Anna", "Bernd", "Carla", "Dieter", "Eva", "Farid", "Greta", "Hans", "Ilse", "Jonas",
         "Karin", "Lukas", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tina", "Uwe"]
LAST = ["Schmidt", "Meyer", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch", "Richter",
        "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann", "Hartmann", "Lange", "Krause"]
GENDERS = ["female", "male", "other", ""]
PLANS = ["gold", "silver", "bronze"]


def ulid(n):
    """A valid, sortable ULID for the n-th contact."""
    value = (1_700_000_000_000 << 80) | n
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def generate(path, plan_id, count):
    rng = random.Random(42)
    now = 1_700_000_000_000
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        for n in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            gender = rng.choice(GENDERS)
            opted_out = 1 if rng.random() < 0.05 else 0
            fields = json.dumps({"plan": rng.choice(PLANS), "age": rng.randint(18, 90)},
                                separators=(",", ":"))
            writer.writerow([
                plan_id, ulid(n), f"+49151{10_000_000 + n}", first, last,
                f"{first.lower()}.{last.lower()}{n}@example.com", gender or "", fields,
                "mobile", "DE", opted_out, now if opted_out else "", "",
                now + n, now + n, f"{first} {last}".lower(), f"{last} {first}".lower(),
            ])


COLUMNS = ("plan_id, id, phone, first_name, last_name, email, gender, fields, number_type, "
           "country, opted_out, opted_out_at, opted_out_reason, created_at, modified_at, "
           "sort_name, sort_name_last")
# Contacts carry their plan's integer key, not its id.
CONTACT_COLUMNS = COLUMNS.replace("plan_id,", "plan,", 1)
PLAN_KEY = "(SELECT key FROM plans WHERE id = staging.plan_id)"
# The sort names each backend's lower() rebuilds from the names are not stored (migration 29);
# searches read them through the store's `SORT_NAME` and `SORT_NAME_LAST` (src/store/sqlite/mod.rs,
# src/store/postgres/mod.rs).
def rebuilt_sort_names(backend, table=""):
    """The "first last" and "last first" sort names as `backend`'s lower() makes them."""
    collate = ' COLLATE "C"' if backend == "postgres" else ""
    first, last = f"{table}first_name", f"{table}last_name"
    return (f"lower(coalesce({first} || ' ' || {last}, {first}, {last}, ''){collate})",
            f"lower(coalesce({last} || ' ' || {first}, {last}, {first}, ''){collate})")


def sort_name_expressions(backend):
    name, name_last = rebuilt_sort_names(backend, "c.")
    return f"coalesce(c.sort_name, {name})", f"coalesce(c.sort_name_last, {name_last})"


def stored_sort_names(backend):
    """The staged sort names, NULL where the backend's lower() rebuilds them."""
    name, name_last = rebuilt_sort_names(backend)
    return f"NULLIF(sort_name, {name}), NULLIF(sort_name_last, {name_last})"


# Contacts store their id as 16 bytes (migration 30), which the raw tools cannot decode from
# the ULID's text (SQLite's CLI here has no unhex): 16 ASCII digits of the row's place are such
# bytes, unique and in creation order.
ID_BYTES = {
    "sqlite": "CAST(printf('%016d', staging.rowid) AS BLOB)",
    "postgres": "convert_to(lpad((row_number() OVER ())::text, 16, '0'), 'UTF8')",
}
# Contacts keep their number type as a code (NumberType::code in src/domain/msisdn.rs); every
# generated contact is `mobile`, whose code is 0.
NUMBER_TYPE_CODE = "CASE number_type WHEN 'mobile' THEN 0 END"


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def roster(*args, database):
    return run([ROSTER, *args, "--database", database]).stdout


def load_sqlite(db, csv_path):
    script = f"""
PRAGMA journal_mode=WAL;
CREATE TEMP TABLE staging ({COLUMNS.replace(',', ' TEXT,')} TEXT);
.mode csv
.import {csv_path} staging
INSERT INTO contacts ({CONTACT_COLUMNS})
  SELECT {PLAN_KEY}, {ID_BYTES["sqlite"]}, phone, first_name, last_name, email, NULLIF(gender, ''), fields,
         {NUMBER_TYPE_CODE}, country, CAST(opted_out AS INTEGER), CAST(NULLIF(opted_out_at, '') AS INTEGER),
         NULLIF(opted_out_reason, ''), CAST(created_at AS INTEGER), CAST(modified_at AS INTEGER),
         {stored_sort_names("sqlite")} FROM staging;
ANALYZE;
"""
    run(["sqlite3", db], input=script)


def load_postgres(url, csv_path):
    script = f"""
CREATE TEMP TABLE staging ({COLUMNS.replace(',', ' TEXT,')} TEXT);
\\copy staging FROM '{csv_path}' WITH (FORMAT csv)
INSERT INTO contacts ({CONTACT_COLUMNS})
  SELECT {PLAN_KEY}, {ID_BYTES["postgres"]}, phone, first_name, last_name, email, NULLIF(gender, ''), fields,
         {NUMBER_TYPE_CODE}, country, opted_out::int::boolean, NULLIF(opted_out_at, '')::bigint,
         NULLIF(opted_out_reason, ''), created_at::bigint, modified_at::bigint,
         {stored_sort_names("postgres")} FROM staging;
ANALYZE;
"""
    run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url], input=script)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(base, token, path):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        body = response.read()
    return time.perf_counter() - start, json.loads(body)


SEARCHES = [
    ("first page, newest first", "/api/contacts?limit=50"),
    ("name prefix (indexed)", "/api/contacts?name=greta%20wag&limit=50"),
    ("last-name prefix", "/api/contacts?name=zimmermann%20p&limit=50"),
    ("phone prefix", "/api/contacts?phone=%2B4915110123&limit=50"),
    ("email, case-insensitive", "/api/contacts?email={email}"),
    ("opted out, first page", "/api/contacts?opted_out=true&limit=50"),
    ("order by name, deep cursor page", None),
    ("page 2000 of 50 (offset)", "/api/contacts?page=2000&page_size=50"),
    ("fields.plan=gold, first page", "/api/contacts?fields.plan=gold&limit=50"),
    ("q: age > 85 and not opted_out, first page",
     "/api/contacts?q=" + urllib.parse.quote('fields.age > 85 and not opted_out') + "&limit=50"),
    ("name contains (scan), first page", "/api/contacts?name_contains=ann&limit=50"),
    ("gender=other, first page", "/api/contacts?gender=other&limit=50"),
    ("gender no contact has, first page", "/api/contacts?gender=unknown&limit=50"),
    ("number type no contact has, first page", "/api/contacts?number_type=voip&limit=50"),
    ("count of gender=other", "/api/contacts?gender=other&limit=1&count=true"),
    ("count of opted out", "/api/contacts?opted_out=true&limit=1&count=true"),
    ("recently modified first", "/api/contacts?order_by=modified_at&direction=desc&limit=50"),
    ("one number", "/api/contacts?phone=%2B4915110000001&limit=50"),
    ("count of q: plan gold and age < 30",
     "/api/contacts?q=" + urllib.parse.quote('fields.plan = "gold" and fields.age < 30')
     + "&limit=1&count=true"),
]


def bench_backend(name, database, plan_id, token, runs, raw_scan, email):
    port = free_port()
    server = subprocess.Popen([ROSTER, "serve", "--listen", f"127.0.0.1:{port}",
                               "--database", database],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz")
                break
            except OSError:
                time.sleep(0.05)
        # A cursor from deep in the name order, for the deep-page search.
        _, page = timed_get(base, token, "/api/contacts?order_by=name&name=tina&limit=1")
        deep = "/api/contacts?order_by=name&limit=50&next=" + page["next"]
        rows = []
        for label, path in SEARCHES:
            path = (path or deep).replace("{email}", urllib.parse.quote(email.upper()))
            times = []
            for _ in range(runs):
                elapsed, body = timed_get(base, token, path)
                times.append(elapsed)
            found = body.get("count", len(body["contacts"]))
            rows.append((label, statistics.median(times) * 1000, found))
        print(f"\n{name}: full scan by the raw tool {raw_scan * 1000:.0f} ms")
        print(f"| search | median ms | ratio to raw full scan | rows |")
        print(f"|---|---:|---:|---:|")
        for label, ms, found in rows:
            print(f"| {label} | {ms:.1f} | {ms / (raw_scan * 1000):.3f} | {found} |")
    finally:
        server.terminate()
        server.wait()


# The shapes of the SQL that the searches above run (see src/store/sql/contacts.rs and src/store/sql/filter.rs).
QUERY_SHAPES = [
    ("name prefix", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') AND (({name} >= 'greta' "
     "AND {name} < 'gretaz') OR ({name_last} >= 'greta' AND {name_last} < 'gretaz')) "
     "ORDER BY c.key DESC LIMIT 51"),
    ("phone prefix", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') AND c.phone >= '+49151' "
     "AND c.phone < '+49152' ORDER BY c.key DESC LIMIT 51"),
    ("email", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND {email_is} ORDER BY c.key DESC LIMIT 51"),
    ("phone", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.phone = '+4915110000001'"),
    ("opted out, first page", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.opted_out ORDER BY c.key DESC LIMIT 51"),
    ("count of opted out", "SELECT count(*) FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.opted_out"),
    # On SQLite, Roster first counts up to 2,000 matches on the value's own index
    # (`value_indexes` in src/store/sql/contacts.rs): a rare value is read through that index,
    # a common one is kept from it (`+c.gender`) so that the page walks the creation order.
    ("gender no contact has", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.gender = 'x' ORDER BY c.key DESC LIMIT 51"),
    ("gender no contact has (SQLite: as Roster sends it)", "SELECT id FROM contacts c INDEXED BY contacts_by_gender "
     "WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.gender = 'x' ORDER BY c.key DESC LIMIT 51"),
    ("gender=other (SQLite: as Roster sends it)", "SELECT id FROM contacts c "
     "WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND +c.gender = 'other' ORDER BY c.key DESC LIMIT 51"),
    ("count of gender=other", "SELECT count(*) FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.gender = 'other'"),
    # The number-type index holds only types that cannot take an SMS; a search for one of those
    # says so, in the index's own words, so that the planner may use it.
    ("number type no contact has", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.number_type NOT IN (0, 1) AND c.number_type = 6 "
     "ORDER BY c.key DESC LIMIT 51"),
    ("number type no contact has (SQLite: as Roster sends it)", "SELECT id FROM contacts c "
     "INDEXED BY contacts_by_number_type WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.number_type NOT IN (0, 1) AND c.number_type = 6 "
     "ORDER BY c.key DESC LIMIT 51"),
    ("modified since, in order", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND (c.modified_at, c.key) > (0, 0) ORDER BY c.modified_at ASC, c.key ASC LIMIT 51"),
    ("one contact by id", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND c.id = 'x'"),
    ("name order, cursor", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') "
     "AND {name} >= 't' AND ({name}, c.key) > ('t', 500000) ORDER BY {name} ASC, c.key ASC LIMIT 51"),
    ("name order, cursor of the earlier form (by id)", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') AND {name} >= 't' AND ({name}, c.key) > ('t', "
     "COALESCE((SELECT key FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = 'p') AND id = 'x'), "
     "(SELECT key - 1 FROM contacts WHERE plan = (SELECT key FROM plans WHERE id = 'p') AND id > 'x' ORDER BY id LIMIT 1), "
     "9223372036854775807)) ORDER BY {name} ASC, c.key ASC LIMIT 51"),
    ("group members", "SELECT id FROM contacts c WHERE c.plan = (SELECT key FROM plans WHERE id = 'p') AND EXISTS (SELECT 1 FROM "
     "group_members m WHERE m.contact = c.key AND m.grp IN (1)) "
     "ORDER BY c.key DESC LIMIT 51"),
]


def sqlite_plans(db, plan_id):
    version = run(["sqlite3", "--version"]).stdout.split()[0]
    # Roster links its own SQLite (libsqlite3-sys, bundled), whose planner may differ.
    print(f"\nSQLite query plans (as the sqlite3 CLI's SQLite {version} plans them):")
    for label, sql in QUERY_SHAPES:
        sql = shape(sql, "sqlite", plan_id)
        plan = run(["sqlite3", db, "EXPLAIN QUERY PLAN " + sql]).stdout.strip()
        print(f"- {label}:\n" + "\n".join("    " + line for line in plan.splitlines()))


def shape(sql, backend, plan_id):
    """A query shape as `backend` runs it for plan `plan_id`."""
    name, name_last = sort_name_expressions(backend)
    # As each dialect's `push_email_is` spells it for its email index.
    email_is = ("(c.plan::text || ' ' || lower(c.email)) = "
                "((SELECT key FROM plans WHERE id = 'p')::text || ' ' || lower('x'))"
                if backend == "postgres"
                else "c.email IS NOT NULL AND lower(c.email) = lower('x')")
    return (sql.replace("{email_is}", email_is).replace("'p'", f"'{plan_id}'")
            .replace("{name}", name).replace("{name_last}", name_last))


def postgres_plans(url, plan_id):
    print("\nPostgreSQL query plans:")
    for label, sql in QUERY_SHAPES:
        if "SQLite:" in label:
            continue
        sql = shape(sql, "postgres", plan_id)
        plan = run(["psql", "-q", "-A", "-t", url, "-c", "EXPLAIN " + sql]).stdout.strip()
        print(f"- {label}:\n" + "\n".join("    " + line for line in plan.splitlines()))


def start_postgres(workdir, settings=()):
    """A throwaway cluster from the system's binaries, owned by `postgres` when run as root,
    with `settings` ("name=value") given to the server as `-c` options."""
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if d.isdigit())
    if not bins:
        return None, None
    bindir = f"/usr/lib/postgresql/{bins[-1]}/bin"
    data = os.path.join(workdir, "pg")
    os.makedirs(data)
    prefix = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    run(prefix + [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    port = free_port()
    server = subprocess.Popen(prefix + [f"{bindir}/postgres", "-D", data, "-p", str(port), "-k", workdir,
                                        "-c", "listen_addresses=127.0.0.1",
                                        *[arg for setting in settings for arg in ("-c", setting)]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if subprocess.run([f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    run(["psql", f"postgres://postgres@127.0.0.1:{port}/postgres", "-c", "CREATE DATABASE bench"])
    return server, f"postgres://postgres@127.0.0.1:{port}/bench"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
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
        print(f"generating {args.contacts} contacts...", file=sys.stderr)
        generate(csv_path, plan["service_plan_id"], args.contacts)
        os.chmod(csv_path, 0o644)
        start = time.perf_counter()
        load_sqlite(sqlite_db, csv_path)
        print(f"sqlite3 load: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        start = time.perf_counter()
        run(["sqlite3", sqlite_db, "SELECT count(*) FROM contacts WHERE fields LIKE '%zzz%'"])
        sqlite_scan = time.perf_counter() - start
        print(f"# Contact search, {args.contacts} contacts in one plan, median of {args.runs}")
        email = run(["sqlite3", sqlite_db, "SELECT email FROM contacts "
                     f"WHERE phone = '+49151{10_000_000 + 777}'"]).stdout.strip()
        bench_backend("SQLite", sqlite_url, plan["service_plan_id"], plan["api_token"], args.runs,
                      sqlite_scan, email)
        sqlite_plans(sqlite_db, plan["service_plan_id"])
        if not args.skip_postgres:
            pg_server, pg_url = start_postgres(workdir)
            if pg_url is None:
                print("\n*** PostgreSQL binaries not found: PostgreSQL part skipped ***")
                return
            pg_plan = json.loads(roster("plans", "create", "Bench", database=pg_url))
            generate(csv_path, pg_plan["service_plan_id"], args.contacts)
            start = time.perf_counter()
            load_postgres(pg_url, csv_path)
            print(f"psql load: {time.perf_counter() - start:.1f} s", file=sys.stderr)
            start = time.perf_counter()
            run(["psql", "-q", pg_url, "-c", "SELECT count(*) FROM contacts WHERE fields LIKE '%zzz%'"])
            pg_scan = time.perf_counter() - start
            bench_backend("PostgreSQL", pg_url, pg_plan["service_plan_id"], pg_plan["api_token"],
                          args.runs, pg_scan, email)
            postgres_plans(pg_url, pg_plan["service_plan_id"])
    finally:
        if pg_server is not None:
            pg_server.terminate()
            pg_server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
