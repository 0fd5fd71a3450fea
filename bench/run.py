#!/usr/bin/env python3
"""Every SPEC §6 figure in one go: runs each benchmark of bench/ in turn (each builds the release
binaries it needs, generates its data deterministically and measures its raw tool or baseline in
the same run), prints their reports and keeps them in one file.

    python3 bench/run.py [--only NAME ...] [--skip-postgres] [--out FILE]

NAME is one of: phone_numbers, contacts_search, import, sending, load, scale. Needs sqlite3,
wrk and (unless --skip-postgres) PostgreSQL's binaries; loopback only, every run bounded in time.
The whole suite takes about an hour and a half on 2 cores.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name, command, takes --skip-postgres
SUITE = [
    ("phone_numbers", ["bash", os.path.join(HERE, "phone_numbers.sh")], False),
    ("contacts_search", [sys.executable, os.path.join(HERE, "contacts_search.py")], True),
    ("import", [sys.executable, os.path.join(HERE, "import.py"), "--rss-rows", "5000000"], True),
    ("sending", [sys.executable, os.path.join(HERE, "sending.py")], True),
    ("load", [sys.executable, os.path.join(HERE, "load.py")], True),
    ("scale", [sys.executable, os.path.join(HERE, "scale.py"), "--svg",
               os.path.join(HERE, "..", "docs", "scale.svg")], True),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[name for name, _, _ in SUITE])
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--out", default="bench-results.md",
                        help="where the reports are kept (default: bench-results.md)")
    args = parser.parse_args()
    failed = []
    with open(args.out, "w") as out:
        for name, command, postgres in SUITE:
            if args.only and name not in args.only:
                continue
            if args.skip_postgres and postgres:
                command = command + ["--skip-postgres"]
            print(f"== {name}: {' '.join(command)}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
            minutes = (time.perf_counter() - start) / 60
            print(result.stdout, flush=True)
            out.write(f"## {name} ({minutes:.1f} min)\n\n{result.stdout}\n")
            out.flush()
            if result.returncode != 0:
                failed.append(name)
                print(f"*** {name} failed (exit {result.returncode}) ***", flush=True)
    print(f"reports kept in {args.out}", file=sys.stderr)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
