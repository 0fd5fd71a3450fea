//! Exports: contacts written as CSV, XLSX or vCard, with their groups and opt-out state, in
//! the columns an import reads back (so that a file exported here imports elsewhere to the
//! same contacts and groups).
//!
//! Contacts arrive in id order from one query and are staged as JSON lines in a temporary
//! file while the custom field names are collected (they become the header); the staged file
//! is then rendered in the format asked for. Memory stays constant whatever the count.

mod csv_file;
pub mod job;
mod vcard;
mod xlsx;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use serde::{Deserialize, Serialize};

use crate::store::ExportContact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Vcf,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Vcf => "vcf",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "vcf" | "vcard" => Some(Self::Vcf),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Vcf => "text/vcard; charset=utf-8",
        }
    }

    /// Contacts one file of this format can hold.
    pub fn max_contacts(self) -> Option<u64> {
        match self {
            // A worksheet has 1,048,576 rows, one of them the header.
            Self::Xlsx => Some(1_048_575),
            Self::Csv | Self::Vcf => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the spreadsheet failed: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("a staged contact could not be read back: {0}")]
    Staged(#[from] serde_json::Error),
}

/// One contact as exported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportLine {
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    pub time_zone: Option<String>,
    pub opted_out: bool,
    pub groups: Vec<String>,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl From<ExportContact> for ExportLine {
    fn from(exported: ExportContact) -> Self {
        let contact = exported.contact;
        Self {
            phone: contact.phone,
            first_name: contact.first_name,
            last_name: contact.last_name,
            email: contact.email,
            gender: contact.gender,
            time_zone: contact.time_zone,
            opted_out: contact.opted_out,
            groups: exported.groups,
            fields: contact.fields.into_map(),
        }
    }
}

impl ExportLine {
    /// A custom field's value as a cell's text.
    fn field_text(&self, name: &str) -> String {
        match self.fields.get(name) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }
}

/// The fixed columns of CSV and XLSX exports, named as the import's mapping names them.
pub const FIXED_COLUMNS: [&str; 8] = [
    "phone",
    "first_name",
    "last_name",
    "email",
    "gender",
    "time_zone",
    "opted_out",
    "groups",
];

/// Group names are joined with this in one cell (and split on `;` when imported).
pub const GROUP_SEPARATOR: &str = "; ";

/// Contacts staged in a temporary file, with every custom field name seen.
pub struct Stager {
    file: BufWriter<std::fs::File>,
    fields: BTreeSet<String>,
    count: u64,
}

impl Stager {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            file: BufWriter::new(tempfile::tempfile()?),
            fields: BTreeSet::new(),
            count: 0,
        })
    }

    pub fn push(&mut self, contact: ExportContact) -> Result<(), ExportError> {
        let line = ExportLine::from(contact);
        self.fields.extend(line.fields.keys().cloned());
        serde_json::to_writer(&mut self.file, &line)?;
        self.file.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Renders everything staged into `out` in `format`.
    pub fn render(self, format: ExportFormat, out: &mut std::fs::File) -> Result<(), ExportError> {
        let mut staged = self.file.into_inner().map_err(|error| error.into_error())?;
        staged.rewind()?;
        let fields: Vec<String> = self.fields.into_iter().collect();
        let lines = BufReader::new(staged).lines().map(|line| {
            let line = line?;
            Ok::<ExportLine, ExportError>(serde_json::from_str(&line)?)
        });
        match format {
            ExportFormat::Csv => csv_file::write(lines, &fields, out),
            ExportFormat::Xlsx => xlsx::write(lines, &fields, out),
            ExportFormat::Vcf => vcard::write(lines, out),
        }
    }
}

/// The cells of one contact, in the order of [`FIXED_COLUMNS`] then `fields`.
fn cells(line: &ExportLine, fields: &[String]) -> Vec<String> {
    let mut cells = vec![
        line.phone.clone(),
        line.first_name.clone().unwrap_or_default(),
        line.last_name.clone().unwrap_or_default(),
        line.email.clone().unwrap_or_default(),
        line.gender.clone().unwrap_or_default(),
        line.time_zone.clone().unwrap_or_default(),
        line.opted_out.to_string(),
        line.groups.join(GROUP_SEPARATOR),
    ];
    cells.extend(fields.iter().map(|name| line.field_text(name)));
    cells
}

fn header(fields: &[String]) -> Vec<String> {
    FIXED_COLUMNS
        .iter()
        .map(|name| (*name).to_owned())
        .chain(fields.iter().map(|name| format!("fields.{name}")))
        .collect()
}

/// A cell a spreadsheet would run as a formula (`=`, `@`, or `+`/`-` not followed by a
/// number) is written with a leading apostrophe, so that opening an export runs nothing.
pub(crate) fn defuse(cell: String) -> String {
    let risky = match cell.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !cell[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '.'),
        _ => false,
    };
    if risky { format!("'{cell}") } else { cell }
}

/// The import template: the columns an import reads, with two example rows.
pub fn template_rows() -> Vec<Vec<String>> {
    let rows: [[&str; 9]; 3] = [
        [
            "phone",
            "first_name",
            "last_name",
            "email",
            "gender",
            "time_zone",
            "opted_out",
            "groups",
            "fields.city",
        ],
        [
            "+14155552671",
            "Ada",
            "Lovelace",
            "ada@example.com",
            "female",
            "Europe/London",
            "false",
            "Customers; Newsletter",
            "London",
        ],
        [
            "+4915112345678",
            "Max",
            "Mustermann",
            "",
            "",
            "",
            "false",
            "Customers",
            "Berlin",
        ],
    ];
    rows.iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect()
}

pub use csv_file::template as csv_template;
pub use xlsx::template as xlsx_template;
