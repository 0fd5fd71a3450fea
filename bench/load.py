#!/usr/bin/env python3
"""HTTP under load: wrk (loopback only, bounded in time) against a release build of
`roster serve`, on SQLite and on PostgreSQL, beside the bare axum "hello" handler of
`examples/hello.rs` (same dependency versions, same server set-up) measured in the same run.

    python3 bench/load.py [--seconds S] [--mixed-seconds M] [--connections C] [--skip-postgres]

For each backend: GET of one group (native and Sinch), a page of 100 members, and a mixed run —
reads of groups and members with PATCH adds of single numbers to the same group (one request in
five a write) — which must finish with zero errors (non-2xx answers or socket errors).

Beside each read, the database alone: the statement the server runs for it, executed as fast as
the database can on the same machine in the same run — pgbench (prepared, 8 clients: the
connections the server holds for these reads) on PostgreSQL, `examples/sqlite_loop.rs` (two
threads, the server's SQLite library and pragmas) on SQLite — so the figure says how close the
server comes to its storage.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import ROOT, ROSTER, free_port, roster, start_postgres  # noqa: E402

HELLO = os.path.join(ROOT, "target", "release", "examples", "hello")
SQLITE_LOOP = os.path.join(ROOT, "target", "release", "examples", "sqlite_loop")

MIXED_LUA = r"""
local group, plan, token = "%(group)s", "%(plan)s", "%(token)s"
local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
local counter = 0
request = function()
  counter = counter + 1
  local kind = counter %% 5
  if kind == 0 then
    local number = string.format("+1415%%07d", 3000000 + (counter * 7919) %% 1000000)
    return wrk.format("PATCH", "/api/contactgroups/" .. group, headers,
                      '{"add": ["' .. number .. '"]}')
  elseif kind == 1 then
    return wrk.format("GET", "/xms/v1/" .. plan .. "/groups/" .. group, headers)
  elseif kind == 2 then
    return wrk.format("GET", "/api/contactgroups/" .. group .. "/members?limit=100", headers)
  else
    return wrk.format("GET", "/api/contactgroups/" .. group, headers)
  end
end
"""

GET_LUA = r"""
wrk.headers["Authorization"] = "Bearer %(token)s"
"""

# Each wrk thread adds its own run of new numbers (+1 646 …), 100 a request.
PATCH_LUA = r"""
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
local made = 0
function setup(thread)
  thread:set("tid", made)
  made = made + 1
end
local counter = 0
request = function()
  counter = counter + 1
  local numbers = {}
  for k = 0, 99 do
    local n = (%(offset)d + tid * 3000000 + counter * 100 + k) %% 8000000
    numbers[#numbers + 1] = string.format('"+1646%%07d"', 2000000 + n)
  end
  return wrk.format(nil, nil, nil, '{"add": [' .. table.concat(numbers, ",") .. ']}')
end
"""


def wait_ready(url):
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def wrk(url, seconds, connections, script=None):
    """Runs wrk; returns requests/s, p99 in ms, and the error count."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket:
        errors += sum(int(x) for x in socket.groups())
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, p99_ms, errors, total


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def analyze(database):
    """Table statistics as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would have them
    a while after the data was written, and SQLite's WAL checkpointed: the steady state, not the
    first minute."""
    if database.startswith("sqlite://"):
        # The checkpoint moves the freshly written pages from the WAL into the file, as SQLite
        # does by itself every thousand pages written: reads of a just-loaded database otherwise
        # look each page up in the WAL's index first (a third of the speed of a members page).
        subprocess.run(["sqlite3", "-cmd", ".timeout 30000", database[len("sqlite://"):],
                        "ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        subprocess.run(["psql", "-q", database, "-c", "ANALYZE"], check=True)


# The statements `roster serve` runs for a group and for a page of a lone group's members
# (GROUP_ROW and MEMBER_PAGE in src/store/sqlite/mod.rs and src/store/postgres/mod.rs): on SQLite with
# the parameters the server binds, on PostgreSQL with the values written in (pgbench prepares
# the statement once).
RAW_SQL = {
    "sqlite": {
        "group": ("SELECT id, name, description, status, size, auto_update, rule, version, "
                  "created_at, modified_at, (SELECT group_concat(id, ',') FROM (SELECT "
                  "child.id FROM group_children gc JOIN contact_groups child ON "
                  "child.key = gc.child WHERE gc.parent = g.key ORDER BY child.id)) AS child_ids "
                  "FROM contact_groups g WHERE g.plan_id = $1 AND g.id = $2",
                  ["%(plan)s", "%(group)s"]),
        "members": ("SELECT json_group_array(json_array(hex(id), phone, first_name, last_name, "
                    "json(CASE WHEN opted_out THEN 'true' ELSE 'false' END)) ORDER BY key) FROM "
                    "(SELECT c.key, c.id, c.phone, c.first_name, c.last_name, c.opted_out FROM "
                    "group_members m JOIN contacts c ON c.key = m.contact WHERE m.grp = "
                    "(SELECT key FROM contact_groups WHERE plan_id = $1 AND id = $2) "
                    "AND m.contact > 0 ORDER BY m.contact LIMIT $3)",
                    ["%(plan)s", "%(group)s", "101"]),
    },
    "postgres": {
        "group": "SELECT id, name, description, status, size, auto_update, rule, version, "
                 "created_at, modified_at, (SELECT string_agg(child.id, ',' ORDER BY "
                 "child.id COLLATE \"C\") FROM group_children gc JOIN contact_groups child "
                 "ON child.key = gc.child WHERE gc.parent = g.key) AS child_ids "
                 "FROM contact_groups g WHERE g.plan_id = '%(plan)s' AND g.id = '%(group)s'",
        "members": "SELECT json_agg(json_build_array(encode(id, 'hex'), phone, first_name, last_name, "
                   "opted_out) ORDER BY key)::text FROM (SELECT c.key, c.id, c.phone, "
                   "c.first_name, c.last_name, c.opted_out FROM group_members m JOIN contacts c "
                   "ON c.key = m.contact WHERE m.grp = (SELECT key FROM contact_groups WHERE "
                   "plan_id = '%(plan)s' AND id = '%(group)s') AND m.contact > 0 "
                   "ORDER BY m.contact LIMIT 101) page",
    },
}


def raw_rate(database, statement, values, seconds, workdir):
    """Executions per second of a statement by the database alone."""
    if database.startswith("sqlite://"):
        sql, params = statement
        out = subprocess.run([SQLITE_LOOP, database[len("sqlite://"):], str(seconds), "2", sql]
                             + [param % values for param in params],
                             check=True, capture_output=True, text=True).stdout
        return float(out)
    sql = statement % values
    script = os.path.join(workdir, "raw.sql")
    with open(script, "w") as out:
        out.write(sql + ";\n")
    out = subprocess.run([pgbench(), "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T",
                          str(seconds), "-f", script, database],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def pgbench():
    found = shutil.which("pgbench")
    if found:
        return found
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if d.isdigit())
    return f"/usr/lib/postgresql/{bins[-1]}/bin/pgbench"


def bench_backend(name, database, args, hello_rps, workdir):
    plan = json.loads(roster("plans", "create", "Load", database=database))
    token, plan_id = plan["api_token"], plan["service_plan_id"]
    port = free_port()
    server = subprocess.Popen([ROSTER, "serve", "--listen", f"127.0.0.1:{port}", "--database",
                               database, "--sender", "off"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        wait_ready(base + "/readyz")
        members = [f"+1415{2_000_000 + n:07d}" for n in range(1000)]
        group = call(base, token, "POST", "/api/contactgroups",
                     {"name": "Load", "members": members})["id"]
        analyze(database)
        values = {"group": group, "plan": plan_id, "token": token}
        get_script = os.path.join(workdir, f"get-{name}.lua")
        with open(get_script, "w") as out:
            out.write(GET_LUA % values)
        mixed_script = os.path.join(workdir, f"mixed-{name}.lua")
        with open(mixed_script, "w") as out:
            out.write(MIXED_LUA % values)
        patch_script = os.path.join(workdir, f"patch-{name}.lua")
        with open(patch_script, "w") as out:
            out.write(PATCH_LUA % {**values, "offset": 0})
        dialect = "sqlite" if database.startswith("sqlite://") else "postgres"
        raw = {kind: raw_rate(database, statement, values, args.seconds, workdir)
               for kind, statement in RAW_SQL[dialect].items()}
        for label, path, script, statement in [
            ("GET /api/contactgroups/{id}", f"/api/contactgroups/{group}", get_script, "group"),
            ("GET /xms/v1/{plan}/groups/{id}", f"/xms/v1/{plan_id}/groups/{group}", get_script,
             "group"),
            ("GET members, page of 100", f"/api/contactgroups/{group}/members?limit=100",
             get_script, "members"),
            ("PATCH add 100 new numbers", f"/api/contactgroups/{group}", patch_script, None),
        ]:
            rows.append((label, *wrk(base + path, args.seconds, args.connections, script),
                         raw.get(statement)))
        rows.append(("mixed: 80% reads, 20% PATCH add",
                     *wrk(base, args.mixed_seconds, args.connections, mixed_script), None))
    finally:
        server.terminate()
        server.wait()
    print(f"\n{name} ({args.connections} connections, loopback)")
    print("| request | requests/s | ratio to hello | p99 ms | errors | requests "
          "| its statement alone/s | ratio to it |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, rps, p99, errors, total, raw in rows:
        alone = "–" if raw is None else f"{raw:,.0f} | {rps / raw:.2f}"
        if raw is None:
            alone += " | –"
        print(f"| {label} | {rps:,.0f} | {rps / hello_rps:.2f} | {p99:.1f} | {errors} | {total:,} "
              f"| {alone} |")
    return all(errors == 0 for _, _, _, errors, _, _ in rows)


def build_release():
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    print("building roster and the hello baseline (release)...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "roster",
                    "--example", "hello", "--example", "sqlite_loop"], cwd=ROOT, check=True)


def hello_baseline(seconds, connections):
    """The bare axum handler's requests/s and p99 (ms) under the same wrk load."""
    port = free_port()
    hello = subprocess.Popen([HELLO, f"127.0.0.1:{port}"])
    try:
        wait_ready(f"http://127.0.0.1:{port}/hello")
        rps, p99, _, _ = wrk(f"http://127.0.0.1:{port}/hello", seconds, connections)
        return rps, p99
    finally:
        hello.terminate()
        hello.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--mixed-seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    build_release()
    workdir = tempfile.mkdtemp(prefix="roster-load-")
    os.chmod(workdir, 0o755)
    pg_server = None
    try:
        hello_rps, hello_p99 = hello_baseline(args.seconds, args.connections)
        print(f"# HTTP under load\n\nhello baseline: {hello_rps:,.0f} requests/s, p99 "
              f"{hello_p99:.1f} ms")
        ok = bench_backend("SQLite", f"sqlite://{workdir}/load.db", args, hello_rps, workdir)
        if not args.skip_postgres:
            pg_server, pg_url = start_postgres(workdir)
            if pg_url is None:
                print("\n*** PostgreSQL binaries not found: PostgreSQL part skipped ***")
            else:
                ok = bench_backend("PostgreSQL", pg_url, args, hello_rps, workdir) and ok
        if not ok:
            raise SystemExit("errors under load")
    finally:
        if pg_server is not None:
            pg_server.terminate()
            pg_server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
