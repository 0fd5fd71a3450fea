#!/usr/bin/env python3
"""Spreadsheets through a running server: the same N contacts as CSV, XLSX (shared strings, as
Excel writes them) and ODS, each uploaded for a preview and committed into a group, on a fresh
SQLite database; then the hostile files of tests/api/spreadsheet_bombs.rs. For each: the time of
the answer, the server's peak resident memory (VmHWM) and, for imports, how long the import held
SQLite's writer (the server's `import committed` log line).

    python3 bench/spreadsheets.py [--rows N] [--baseline PATH_TO_OLDER_ROSTER] [--skip-bombs]

With --baseline, every measurement is made with that binary too, in the same run, one server
per file so that each peak is that file's own.
"""

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contacts_search import ROSTER, run  # noqa: E402

# bench/import.py's data, whose module name is a keyword.
IMPORT_BENCH = importlib.import_module("import")
HEADER = ["phone", "first_name", "last_name", "email", "city", "customer_id"]


def write_csv(path, rows):
    """The same file as bench/import.py's."""
    IMPORT_BENCH.generate(path, rows)


def row(i):
    """Row i of that file."""
    area = (415, 212, 646, 718, 310, 312, 617, 206, 303, 512)[i // 8_000_000 % 10]
    exchange = 200 + (i // 10_000) % 800
    first, last = IMPORT_BENCH.FIRST[i % 10], IMPORT_BENCH.LAST[(i // 10) % 10]
    return [f"+1{area}{exchange}{i % 10_000:04d}", first, last,
            f"{first.lower()}.{i}@example.com", IMPORT_BENCH.CITIES[i % 8], f"C{i:08d}"]


def column(index):
    return "ABCDEF"[index]


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;")


def write_xlsx(path, rows):
    """Text in shared strings and the phone as a number, as Excel saves a typed-in list."""
    strings, index = [], {}

    def shared(text):
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        archive.writestr("xl/workbook.xml", '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            cells = "".join(f'<c r="{column(c)}1" t="s"><v>{shared(h)}</v></c>'
                            for c, h in enumerate(HEADER))
            sheet.write(f'<row r="1">{cells}</row>'.encode())
            for i in range(rows):
                values = row(i)
                cells = f'<c r="A{i + 2}"><v>{values[0][1:]}</v></c>' + "".join(
                    f'<c r="{column(c)}{i + 2}" t="s"><v>{shared(v)}</v></c>'
                    for c, v in enumerate(values) if c > 0)
                sheet.write(f'<row r="{i + 2}">{cells}</row>'.encode())
            sheet.write(b"</sheetData></worksheet>")
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as out:
            out.write(f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" uniqueCount="{len(strings)}">'.encode())
            for text in strings:
                out.write(f"<si><t>{escape(text)}</t></si>".encode())
            out.write(b"</sst>")


def write_ods(path, rows):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
        with archive.open("content.xml", "w", force_zip64=True) as out:
            out.write(b'<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Contacts">')

            def cells(values):
                return "".join(
                    f'<table:table-cell office:value-type="string"><text:p>{escape(v)}</text:p></table:table-cell>'
                    for v in values)

            out.write(f"<table:table-row>{cells(HEADER)}</table:table-row>".encode())
            for i in range(rows):
                out.write(f"<table:table-row>{cells(row(i))}</table:table-row>".encode())
            out.write(b"</table:table></office:spreadsheet></office:body></office:document-content>")


def status_field(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss(pid):
    return status_field(pid, "VmHWM")


class AnonymousPeak(threading.Thread):
    """The largest RssAnon seen: the process's own memory, without the pages of the SQLite file
    it maps (which VmHWM counts, and which are the operating system's cache)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True
        self.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, status_field(self.pid, "RssAnon"))
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


class Server:
    def __init__(self, binary, workdir):
        self.db = os.path.join(workdir, f"bench-{time.monotonic_ns()}.db")
        self.env = dict(os.environ, ROSTER_DATABASE_URL=f"sqlite://{self.db}", RUST_LOG="info")
        out = run([binary, "plans", "create", "Bench", "--default-region", "US"], env=self.env)
        self.token = re.search(r'"api_token":"([^"]+)"', out.stdout).group(1)
        port = 20000 + os.getpid() % 20000
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(workdir, f"server-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--sender", "off", "--listen", f"127.0.0.1:{port}"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def upload(self, path):
        start = time.perf_counter()
        with open(path, "rb") as body:
            answer = requests.post(f"{self.base}/api/imports", headers=self.auth,
                                   files={"file": (os.path.basename(path), body)}, timeout=600)
        return time.perf_counter() - start, answer

    def commit(self, import_id):
        start = time.perf_counter()
        answer = requests.post(f"{self.base}/api/imports/{import_id}/commit", headers=self.auth,
                               json={"group_names": ["Bench"]}, timeout=60)
        answer.raise_for_status()
        while True:
            status = requests.get(f"{self.base}/api/imports/{import_id}", headers=self.auth,
                                  timeout=60).json()
            if status["status"] in ("done", "failed"):
                return time.perf_counter() - start, status
            time.sleep(0.2)

    def held(self):
        # The line is logged just after the import shows done. A file object of its own: the
        # server writes through the one it was given.
        for _ in range(50):
            with open(self.log_path) as log:
                found = re.findall(r"transaction_seconds=([0-9.]+)", log.read())
            if found:
                return float(found[-1])
            time.sleep(0.1)
        return None

    def stop(self):
        peak = peak_rss(self.process.pid)
        self.process.kill()
        self.process.wait()
        self.log.close()
        return peak


def measure(binary, path, workdir, commit):
    server = Server(binary, workdir)
    anonymous = AnonymousPeak(server.process.pid)
    try:
        took, answer = server.upload(path)
        result = {"preview_s": took, "status": answer.status_code,
                  "preview_peak_mb": peak_rss(server.process.pid) / 2**20}
        body = answer.json()
        if answer.status_code != 201:
            result["detail"] = body.get("detail", "")[:100]
        elif commit:
            took, status = server.commit(body["id"])
            result.update(import_s=took, import_status=status["status"],
                          created=(status.get("report") or {}).get("created"),
                          held_s=server.held())
    except requests.RequestException as error:
        result = {"error": str(error)[:100]}
    result["anon_peak_mb"] = anonymous.stop() / 2**20
    result["peak_mb"] = server.stop() / 2**20
    return {key: round(value, 2) if isinstance(value, float) else value
            for key, value in result.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline")
    parser.add_argument("--skip-bombs", action="store_true")
    args = parser.parse_args()
    binaries = [("roster", ROSTER)] + ([("baseline", args.baseline)] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="roster-sheets-") as workdir:
        files = {}
        for kind, write in (("csv", write_csv), ("xlsx", write_xlsx), ("ods", write_ods)):
            path = os.path.join(workdir, f"contacts.{kind}")
            start = time.perf_counter()
            write(path, args.rows)
            files[kind] = path
            print(f"# {kind}: {args.rows} rows, {os.path.getsize(path) / 2**20:.1f} MB "
                  f"(written in {time.perf_counter() - start:.0f} s)", flush=True)
        for kind, path in files.items():
            for label, binary in binaries:
                print(f"{kind:5} {label:9} {measure(binary, path, workdir, True)}", flush=True)
        if not args.skip_bombs:
            bombs = os.path.join(workdir, "bombs")
            subprocess.run(["cargo", "test", "--test", "api", "write_bomb_files", "--",
                            "--ignored", "--exact", "spreadsheet_bombs::write_bomb_files"],
                           env=dict(os.environ, ROSTER_BOMBS_TO=bombs), check=True,
                           stdout=subprocess.DEVNULL)
            for name in sorted(os.listdir(bombs)):
                for label, binary in binaries:
                    result = measure(binary, os.path.join(bombs, name), workdir, False)
                    print(f"bomb {name:40} {label:9} {result}", flush=True)


if __name__ == "__main__":
    main()
