//! XLS workbooks (BIFF8, Excel 97–2003) through calamine, which loads every sheet of the workbook
//! whole (it has no streaming reader for XLS) before the chosen sheet's grid is read row by row.
//! [`ole`](super::ole) checks the file first, so what calamine loads is bounded by the caps.

use std::io::{Read, Seek, SeekFrom};

use calamine::{Data, Range, Reader, Sheet, SheetType, SheetVisible, Xls, open_workbook_from_rs};

use super::cells::{RowBuilder, date_time_text, number_text};
use super::columns::{Rows, table_from_rows};
use super::limits::Limits;
use super::ole;
use super::{Cell, HeaderRow, ReadError, SourceRow, Table, guarded};

fn spreadsheet_error(error: impl std::fmt::Display) -> ReadError {
    ReadError::Spreadsheet(error.to_string())
}

/// The worksheets of a workbook, in order; chart, dialog and macro sheets hold no table.
pub(super) fn list_sheets<R: Read + Seek>(
    mut reader: R,
    limits: &Limits,
) -> Result<Vec<String>, ReadError> {
    check_compound_file(&mut reader, limits)?;
    let metadata = guarded(|| {
        open_workbook_from_rs::<Xls<R>, R>(reader)
            .map(|workbook| workbook.sheets_metadata().to_vec())
            .map_err(spreadsheet_error)
    })?;
    Ok(worksheets(&metadata)
        .map(|sheet| sheet.name.clone())
        .collect())
}

fn worksheets(metadata: &[Sheet]) -> impl Iterator<Item = &Sheet> {
    metadata
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet)
}

/// The sheet asked for, or the first visible worksheet.
fn choose_sheet(metadata: &[Sheet], requested: Option<&str>) -> Result<String, ReadError> {
    let mut sheets = worksheets(metadata);
    let chosen = match requested {
        Some(requested) => sheets
            .find(|sheet| sheet.name == requested)
            .ok_or_else(|| ReadError::UnknownSheet {
                requested: requested.to_owned(),
                available: worksheets(metadata)
                    .map(|sheet| sheet.name.clone())
                    .collect(),
            })?,
        None => worksheets(metadata)
            .find(|sheet| sheet.visible == SheetVisible::Visible)
            .or_else(|| sheets.next())
            .ok_or(ReadError::NoSheets)?,
    };
    Ok(chosen.name.clone())
}

/// See [`ole`](super::ole): a damaged or oversized compound file must not reach calamine.
fn check_compound_file<R: Read + Seek>(reader: &mut R, limits: &Limits) -> Result<(), ReadError> {
    reader.seek(SeekFrom::Start(0))?;
    ole::check(reader, limits)?;
    reader.seek(SeekFrom::Start(0))?;
    Ok(())
}

pub(super) fn open<R: Read + Seek + Send + 'static>(
    mut reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
    limits: &Limits,
) -> Result<Table, ReadError> {
    check_compound_file(&mut reader, limits)?;
    guarded(|| {
        let mut workbook: Xls<R> = open_workbook_from_rs(reader).map_err(spreadsheet_error)?;
        let name = choose_sheet(workbook.sheets_metadata(), sheet)?;
        workbook.worksheet_range(&name).map_err(spreadsheet_error)
    })
    .and_then(|range| table_from_range(range, header))
}

fn table_from_range(range: Range<Data>, header: HeaderRow) -> Result<Table, ReadError> {
    let (first_row, first_column) = range.start().unwrap_or((0, 0));
    let rows: Rows = Box::new(RangeRows {
        range,
        first_row,
        first_column,
        next: 0,
    });
    table_from_rows(rows, header)
}

/// The rows of a loaded sheet. A `Range` covers the used cells' bounding box, so its first row
/// and column may be anywhere on the sheet; rows keep their sheet numbers.
struct RangeRows {
    range: Range<Data>,
    first_row: u32,
    first_column: u32,
    next: usize,
}

impl Iterator for RangeRows {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (height, width) = self.range.get_size();
        while self.next < height {
            let index = self.next;
            self.next += 1;
            let number = u64::from(self.first_row) + index as u64 + 1;
            let mut row = RowBuilder::new(number, self.first_column);
            for column in 0..width {
                if let Some(value) = self.range.get((index, column)) {
                    let column = u32::try_from(column)
                        .unwrap_or(u32::MAX)
                        .saturating_add(self.first_column);
                    row.add(column, cell_of(value));
                }
            }
            if let Some(row) = row.finish() {
                return Some(row);
            }
        }
        None
    }
}

fn cell_of(value: &Data) -> Cell {
    let (text, numeric) = match value {
        Data::Int(value) => (value.to_string(), true),
        Data::Float(value) => (number_text(*value), true),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => {
            (text.trim().to_owned(), false)
        }
        Data::Bool(value) => (value.to_string(), false),
        Data::DateTime(value) => (date_time_text(value), false),
        Data::Error(_) | Data::Empty => (String::new(), false),
    };
    Cell { text, numeric }
}
