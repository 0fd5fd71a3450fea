//! Hostile spreadsheets sent to a real `roster serve`: files of a few megabytes that inflate to
//! gigabytes, claim billions of rows or lay out grids of millions of cells. Each must be answered
//! 413 naming the cap that stopped it, before the preview's own time cap, while the server's peak
//! memory (`VmHWM`) stays under the documented import peak (docs/security.md).
//!
//! Only on SQLite: a file is refused while it is read for its preview, before anything of it
//! reaches the database.

use std::io::{Cursor, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, wait_ready};

/// `ROSTER_BOMBS_AGAINST` runs the bombs against another build (for before-and-after figures).
fn roster() -> String {
    std::env::var("ROSTER_BOMBS_AGAINST")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roster").to_owned())
}

/// docs/security.md: a server previewing or importing any file stays under this.
const DOCUMENTED_PEAK_BYTES: u64 = 200 * 1024 * 1024;

/// A ZIP archive whose entries are written in pieces, so that a gigabyte entry is never held.
struct Archive(zip::ZipWriter<Cursor<Vec<u8>>>);

impl Archive {
    fn new() -> Self {
        Self(zip::ZipWriter::new(Cursor::new(Vec::new())))
    }

    fn entry(mut self, name: &str, pieces: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let options = zip::write::SimpleFileOptions::default()
            .compression_level(Some(6))
            .large_file(true);
        self.0.start_file(name, options).unwrap();
        for piece in pieces {
            self.0.write_all(&piece).unwrap();
        }
        self
    }

    fn text(self, name: &str, text: &str) -> Self {
        self.entry(name, [text.as_bytes().to_vec()])
    }

    fn finish(self) -> Vec<u8> {
        self.0.finish().unwrap().into_inner()
    }
}

/// `count` copies of `unit`, in pieces of about a megabyte.
fn repeated(unit: &[u8], count: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    let per_piece = (1 << 20) / unit.len().max(1) + 1;
    (0..count)
        .step_by(per_piece)
        .map(move |start| unit.repeat(per_piece.min(count - start)))
}

const GIB: usize = 1 << 30;

fn xlsx(
    sheet: impl IntoIterator<Item = Vec<u8>>,
    strings: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<u8> {
    // Every part a strict reader asks for, so that the bomb is what stops it.
    Archive::new()
        .text(
            "[Content_Types].xml",
            r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#,
        )
        .text(
            "_rels/.rels",
            r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        )
        .text(
            "xl/workbook.xml",
            r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        )
        .text(
            "xl/_rels/workbook.xml.rels",
            r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
        )
        .entry("xl/sharedStrings.xml", strings)
        .entry("xl/worksheets/sheet1.xml", sheet)
        .finish()
}

fn ods(content: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    Archive::new()
        .text("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        .text(
            "META-INF/manifest.xml",
            r#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
        )
        .entry("content.xml", content)
        .finish()
}

const ODS_START: &str = r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Contacts">"#;

/// Each bomb: its name, the file, and the cap that must stop it.
fn bombs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let one_cell_strings = [b"<sst><si><t>".to_vec()]
        .into_iter()
        .chain(repeated(b"A", GIB))
        .chain([b"</t></si></sst>".to_vec()]);
    let one_cell = xlsx(
        [
            br#"<worksheet><sheetData><row><c t="s"><v>0</v></c></row></sheetData></worksheet>"#
                .to_vec(),
        ],
        one_cell_strings,
    );
    let rows = xlsx(
        [b"<worksheet><sheetData>".to_vec()]
            .into_iter()
            .chain(repeated(b"<row><c><v>1</v></c></row>", 34_000_000))
            .chain([b"</sheetData></worksheet>".to_vec()]),
        [b"<sst></sst>".to_vec()],
    );
    // Short tags and no rows: only the inflated size stops it.
    let tag = format!(r#"<x a="{}"/>"#, "B".repeat(4000));
    let tags = xlsx(
        [b"<worksheet><sheetData>".to_vec()]
            .into_iter()
            .chain(repeated(tag.as_bytes(), GIB / tag.len() + 1)),
        [b"<sst></sst>".to_vec()],
    );
    let ods_cell =
        ods(
            [format!("{ODS_START}<table:table-row><table:table-cell><text:p>").into_bytes()]
                .into_iter()
                .chain(repeated(b"A", GIB)),
        );
    let ods_rows = ods([format!(
        r#"{ODS_START}<table:table-row table:number-rows-repeated="2000000000"><table:table-cell table:number-columns-repeated="16384" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .into_bytes()]);
    let mut many = Archive::new()
        .text("_rels/.rels", "<Relationships/>")
        .text("xl/workbook.xml", "<workbook/>");
    for n in 0..20_000 {
        many = many.text(&format!("xl/media/{n}.xml"), "<x/>");
    }
    // Two cells at opposite corners of the BIFF8 grid (written by src/import/read/tests.rs's
    // write_fuzz_seeds): calamine would lay out 16,777,216 cells.
    let corners = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/spreadsheet_open/bomb_xls_corners.xls"
    ))
    .unwrap();
    vec![
        (
            "XLSX, one shared string of 1 GiB",
            one_cell,
            "xml_token_bytes",
        ),
        ("XLSX, 34,000,000 rows", rows, "sheet_rows"),
        (
            "XLSX, a sheet of 1 GiB of tags",
            tags,
            "inflated_entry_bytes",
        ),
        ("ODS, one paragraph of 1 GiB", ods_cell, "xml_token_bytes"),
        (
            "ODS, a full row repeated 2,000,000,000 times",
            ods_rows,
            "sheet_rows",
        ),
        ("XLSX, 20,001 entries", many.finish(), "zip_entries"),
        ("XLS, two cells at opposite corners", corners, "xls_cells"),
    ]
}

/// The server's peak resident memory so far.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreadsheet_bombs_are_refused_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/roster.db", dir.path().display());
    let created = Command::new(roster())
        .args(["plans", "create", "Bombs"])
        .env("ROSTER_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let plan: Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = plan["api_token"].as_str().unwrap().to_owned();
    let port = free_port();
    let mut server = Command::new(roster())
        .args(["serve", "--sender", "off"])
        .env("ROSTER_DATABASE_URL", &database)
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;

    let mut failures: Vec<&str> = Vec::new();
    for (name, bytes, cap) in bombs() {
        let size = bytes.len();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("bomb"),
        );
        let started = Instant::now();
        let response = client
            .post(format!("{base}/api/imports"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        let status = response.status();
        let problem: Value = response.json().await.unwrap();
        let peak = peak_rss(server.id());
        eprintln!(
            "{name}: {size} bytes, {status} in {took:?}, server peak {} MB: {}",
            peak >> 20,
            problem["detail"]
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        // The preview's own time cap bounds any answer; these stop far sooner.
        if status != 413
            || problem["errors"][0]["field"] != "file"
            || !detail.contains(&format!("cap {cap} = "))
            || took >= Duration::from_secs(30)
            || peak >= DOCUMENTED_PEAK_BYTES
        {
            failures.push(name);
        }
        if server.try_wait().unwrap().is_some() {
            failures.push("the server died");
            break;
        }
    }
    let _ = server.kill();
    server.wait().unwrap();
    assert!(
        failures.is_empty(),
        "not refused as they should be: {failures:?}"
    );
}

/// Writes the bombs to `ROSTER_BOMBS_TO` for bench/spreadsheets.py.
#[test]
#[ignore = "writes files; run by bench/spreadsheets.py"]
fn write_bomb_files() {
    let Ok(dir) = std::env::var("ROSTER_BOMBS_TO") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes, _) in bombs() {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::fs::write(std::path::Path::new(&dir).join(file), bytes).unwrap();
    }
}
