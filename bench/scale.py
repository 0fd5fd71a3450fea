#!/usr/bin/env python3
"""The HTTP hot path as groups and plans grow: the figures of bench/load.py for groups of 10,000,
100,000 and 1,000,000 members in a plan of 1,000,000 contacts, then again once the plan holds
5,000,000 contacts — on SQLite and PostgreSQL, beside the bare axum "hello" handler measured in
the same run (wrk, loopback only, bounded in time).

    python3 bench/scale.py [--seconds S] [--connections C] [--contacts N,M] [--skip-postgres]
                           [--svg docs/scale.svg]

The contacts are loaded with `roster import` (a generated CSV whose `groups` column puts the first
10,000 rows in "Members 10k", the first 100,000 in "Members 100k" and all in "Members 1M").
Each point: GET of the group (native and Sinch), the first page of 100 members, and PATCH adding
100 new numbers (so the plan grows by the numbers those runs add; the report says by how many).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import ROSTER, free_port, roster, run, start_postgres  # noqa: E402
from load import (  # noqa: E402
    GET_LUA, PATCH_LUA, analyze, build_release, call, hello_baseline, wait_ready, wrk)

SIZES = [(10_000, "Members 10k"), (100_000, "Members 100k"), (1_000_000, "Members 1M")]

REQUESTS = ["GET group (native)", "GET group (Sinch)", "members page of 100", "PATCH add 100"]


def phone(i):
    """Distinct valid US numbers: 8,000,000 per area code."""
    area = (415, 212, 718, 310, 312, 617, 206, 303)[i // 8_000_000]
    return f"+1{area}{200 + (i // 10_000) % 800}{i % 10_000:04d}"


def generate(path, first, count, with_groups):
    with open(path, "w", encoding="utf-8") as out:
        out.write("phone,first_name,last_name" + (",groups\n" if with_groups else "\n"))
        for i in range(first, first + count):
            line = f"{phone(i)},Ada{i % 97},Lovelace{i % 89}"
            if with_groups:
                names = [name for size, name in SIZES if i < size]
                line += "," + ";".join(names)
            out.write(line + "\n")
    os.chmod(path, 0o644)


def contact_count(base, token):
    return call(base, token, "GET", "/api/contacts?limit=1&count=true").get("count")


def answer(url, token):
    """Status and body of one GET, for the report when wrk saw errors."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request) as response:
            return f"{response.status} {response.read()[:300]!r}"
    except urllib.error.HTTPError as error:
        return f"{error.code} {error.read()[:300]!r}"
    except OSError as error:
        return repr(error)


def measure(base, token, plan_id, groups, args, workdir, label, offset):
    """One row of figures per group size."""
    points = []
    get_script = os.path.join(workdir, "get.lua")
    with open(get_script, "w") as out:
        out.write(GET_LUA % {"token": token})
    for size, group in groups:
        patch_script = os.path.join(workdir, f"patch-{size}.lua")
        with open(patch_script, "w") as out:
            out.write(PATCH_LUA % {"token": token, "offset": offset})
        offset += 1_000_000
        figures = []
        for path, script in [
            (f"/api/contactgroups/{group}", get_script),
            (f"/xms/v1/{plan_id}/groups/{group}", get_script),
            (f"/api/contactgroups/{group}/members?limit=100", get_script),
            (f"/api/contactgroups/{group}", patch_script),
        ]:
            rps, p99, errors, total = wrk(base + path, args.seconds, args.connections, script)
            if errors:
                raise SystemExit(f"{label}, {size:,} members, {path}: {errors} errors; one "
                                 f"request now: {answer(base + path, token)}")
            figures.append((rps, p99))
        points.append((label, size, figures))
        print(f"  {label}, {size:,} members: " + ", ".join(
            f"{name} {rps:,.0f}/s p99 {p99:.1f} ms" for name, (rps, p99) in zip(REQUESTS, figures)),
            file=sys.stderr, flush=True)
    return points, offset


def bench_backend(name, database, args, workdir):
    totals = [int(n) for n in args.contacts.split(",")]
    plan = json.loads(roster("plans", "create", "Scale", database=database))
    token, plan_id = plan["api_token"], plan["service_plan_id"]
    first = os.path.join(workdir, "first.csv")
    generate(first, 0, totals[0], True)
    print(f"{name}: importing {totals[0]:,} contacts...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    run([ROSTER, "import", first, "--plan", plan_id, "--map", "groups=groups",
         "--database", database], env={**os.environ, "RUST_LOG": "warn"})
    print(f"  {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    analyze(database)
    port = free_port()
    server = subprocess.Popen([ROSTER, "serve", "--listen", f"127.0.0.1:{port}", "--database",
                               database, "--sender", "off"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    points = []
    offset = 0
    try:
        wait_ready(base + "/readyz")
        listed = call(base, token, "GET", "/api/contactgroups?name_contains=Members&limit=10")
        by_name = {g["name"]: g["id"] for g in listed["groups"]}
        groups = [(size, by_name[group]) for size, group in SIZES if size <= totals[0]]
        loaded = totals[0]
        for total in totals:
            if total > loaded:
                more = os.path.join(workdir, "more.csv")
                generate(more, loaded, total - loaded, False)
                print(f"{name}: importing {total - loaded:,} more contacts...", file=sys.stderr,
                      flush=True)
                start = time.perf_counter()
                run([ROSTER, "import", more, "--plan", plan_id, "--database", database],
                    env={**os.environ, "RUST_LOG": "warn"})
                print(f"  {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
                os.remove(more)
                analyze(database)
                loaded = total
            label = f"{name}, {total:,} contacts"
            got, offset = measure(base, token, plan_id, groups, args, workdir, label, offset)
            points += got
        grown = contact_count(base, token)
    finally:
        server.terminate()
        server.wait()
    return points, grown


def svg(path, hello_rps, points):
    """Requests/s against group size (log scale), one line per request and backend/plan size."""
    width, height, left, right, top, bottom = 880, 460, 70, 320, 30, 50
    sizes = sorted({size for _, size, _ in points})
    series = {}
    for label, size, figures in points:
        short = label.replace(",000,000 contacts", "M contacts")
        for name, (rps, _) in zip(REQUESTS, figures):
            series.setdefault(f"{short}: {name}", []).append((size, rps))
    top_rps = max(hello_rps * 0.45, max(rps for s in series.values() for _, rps in s)) * 1.05
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(size):
        if len(sizes) == 1:
            return left + plot_w / 2
        return left + plot_w * sizes.index(size) / (len(sizes) - 1)

    def y(rps):
        return top + plot_h * (1 - rps / top_rps)

    colours = ["#1b6ca8", "#d1495b", "#2e933c", "#8a5a83", "#edae49", "#00798c", "#30343f",
               "#b56576"]
    dashes = {"GET group (native)": "", "GET group (Sinch)": "6 3", "members page of 100": "2 3",
              "PATCH add 100": "10 3 2 3"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
             'stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
             f'<text x="{left}" y="18" font-size="13">requests/s by group size (members)</text>']
    for size in sizes:
        parts.append(f'<text x="{x(size):.0f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{size:,}</text>')
    for fraction in range(0, 6):
        rps = top_rps * fraction / 5
        parts.append(f'<text x="{left - 6}" y="{y(rps) + 4:.0f}" text-anchor="end">'
                     f'{rps / 1000:.0f}k</text>')
    target = hello_rps * 0.4
    parts.append(f'<line x1="{left}" y1="{y(target):.0f}" x2="{left + plot_w}" '
                 f'y2="{y(target):.0f}" stroke="#999" stroke-dasharray="4 4"/>')
    parts.append(f'<text x="{left + 4}" y="{y(target) - 4:.0f}" fill="#666">40% of hello '
                 f'({target:,.0f}/s)</text>')
    labels = sorted({name.split(": ")[0] for name in series})
    for index, (name, line) in enumerate(sorted(series.items())):
        label, request = name.split(": ")
        colour = colours[labels.index(label) % len(colours)]
        coords = " ".join(f"{x(size):.0f},{y(rps):.0f}" for size, rps in line)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                     f'stroke-width="2" stroke-dasharray="{dashes[request]}"/>')
        legend_y = top + 14 * index
        parts.append(f'<line x1="{width - right + 10}" y1="{legend_y}" x2="{width - right + 34}" '
                     f'y2="{legend_y}" stroke="{colour}" stroke-width="2" '
                     f'stroke-dasharray="{dashes[request]}"/>')
        parts.append(f'<text x="{width - right + 38}" y="{legend_y + 4}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as out:
        out.write("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--contacts", default="1000000,5000000",
                        help="plan sizes, comma-separated, ascending (the first at least 10,000)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--svg", help="also draw the figures as an SVG plot at this path")
    args = parser.parse_args()
    build_release()
    workdir = tempfile.mkdtemp(prefix="roster-scale-")
    os.chmod(workdir, 0o755)
    pg_server = None
    try:
        hello_rps, _ = hello_baseline(args.seconds, args.connections)
        points, grown = bench_backend("SQLite", f"sqlite://{workdir}/scale.db", args, workdir)
        growth = [("SQLite", grown)]
        if not args.skip_postgres:
            pg_server, pg_url = start_postgres(workdir)
            if pg_url is None:
                print("\n*** PostgreSQL binaries not found: PostgreSQL part skipped ***")
            else:
                more, grown = bench_backend("PostgreSQL", pg_url, args, workdir)
                points += more
                growth.append(("PostgreSQL", grown))
        print(f"# Scale curve\n\nhello baseline: {hello_rps:,.0f} requests/s; "
              f"{args.connections} connections, {args.seconds} s a figure\n")
        print("| backend, plan | members | " + " | ".join(
            f"{name} req/s (ratio, p99 ms)" for name in REQUESTS) + " |")
        print("|---|---:|" + "---:|" * len(REQUESTS))
        for label, size, figures in points:
            print(f"| {label} | {size:,} | " + " | ".join(
                f"{rps:,.0f} ({rps / hello_rps:.2f}, {p99:.1f})" for rps, p99 in figures) + " |")
        for backend, count in growth:
            print(f"\n{backend}: the plan ended with {count:,} contacts (the PATCH runs' numbers "
                  "included)")
        if args.svg:
            svg(args.svg, hello_rps, points)
            print(f"\nplot: {args.svg}")
    finally:
        if pg_server is not None:
            pg_server.terminate()
            pg_server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
