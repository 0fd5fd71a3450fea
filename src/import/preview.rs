//! What a client sees of an uploaded file before committing it: the format found, the columns
//! with a suggested mapping, the first rows, and how many rows there are.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::read::{self, Detected, HeaderRow, Limits, ReadError};

/// Rows shown in a preview.
pub const PREVIEW_ROWS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    /// `csv`, `xlsx`, `xls`, `ods` or `vcard`.
    pub format: String,
    /// Text files: `utf-8`, `utf-8-bom`, `utf-16le`, `utf-16be` or `windows-1252`.
    pub encoding: Option<String>,
    /// CSV: the delimiter found (`,` `;` tab or `|`).
    pub delimiter: Option<String>,
    /// Spreadsheets: every sheet's name, and the one read.
    pub sheets: Vec<String>,
    pub sheet: Option<String>,
    /// Whether the first row holds column names (if not, columns are "Column 1", …).
    pub has_header_row: bool,
    pub columns: Vec<PreviewColumn>,
    /// The first rows, as text.
    pub rows: Vec<PreviewRow>,
    /// Data rows in the file (empty rows are not counted).
    pub total_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewColumn {
    pub name: String,
    /// What the column would be imported as: `phone`, `first_name`, `last_name`, `email`,
    /// `gender`, `time_zone`, `opted_out`, `groups`, `fields.NAME` or `ignore`.
    pub suggested: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewRow {
    /// The row's number as a spreadsheet shows it (the header is row 1).
    pub row: u64,
    pub cells: Vec<String>,
}

/// Reads the whole file once: to check it can be read, to show its first rows and to count
/// the rest. Reading stops with [`read::Cap::PreviewSeconds`] after
/// [`read::limits::MAX_PREVIEW_TIME`], and at every other cap of [`Limits`].
pub fn preview(
    path: &std::path::Path,
    file_name: Option<&str>,
    sheet: Option<&str>,
) -> Result<(Detected, Preview), ReadError> {
    preview_with(path, file_name, sheet, &Limits::for_preview())
}

/// [`preview`], held to `limits`.
pub fn preview_with(
    path: &std::path::Path,
    file_name: Option<&str>,
    sheet: Option<&str>,
    limits: &Limits,
) -> Result<(Detected, Preview), ReadError> {
    let mut file = std::fs::File::open(path).map_err(ReadError::from)?;
    let detected = read::detect_with(&mut file, file_name, limits)?;
    let file = std::fs::File::open(path).map_err(ReadError::from)?;
    let table = read::open_with(file, &detected, sheet, HeaderRow::Detect, limits)?;
    let suggested = read::suggest_mapping(&table.headers);
    let columns = table
        .headers
        .iter()
        .zip(suggested)
        .map(|(name, suggested)| PreviewColumn {
            name: name.clone(),
            suggested,
        })
        .collect();
    let mut rows = Vec::new();
    let mut total_rows = 0u64;
    for item in table.rows {
        // The readers of archives watch the clock as they inflate; this catches the others.
        if total_rows.is_multiple_of(1024) {
            limits.check_time()?;
        }
        match item {
            Ok(row) if rows.len() < PREVIEW_ROWS => rows.push(PreviewRow {
                row: row.number,
                cells: row.cells.into_iter().map(|cell| cell.text).collect(),
            }),
            Ok(_) => {}
            // Row-level problems are reported when the file is committed.
            Err(error) if error.row().is_some() => {}
            Err(error) => return Err(error),
        }
        total_rows += 1;
    }
    let sheet = match sheet {
        Some(name) => Some(name.to_owned()),
        None => detected.sheets.first().cloned(),
    };
    let preview = Preview {
        format: serde_json::to_value(detected.format)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default(),
        encoding: detected.encoding.and_then(|encoding| {
            serde_json::to_value(encoding)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
        }),
        delimiter: detected.delimiter.map(|c| c.to_string()),
        sheets: detected.sheets.clone(),
        sheet,
        has_header_row: table.has_header_row,
        columns,
        rows,
        total_rows,
    };
    Ok((detected, preview))
}
