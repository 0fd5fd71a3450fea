//! Spreadsheets through calamine: XLSX streamed cell by cell; XLS and ODS loaded whole (calamine
//! parses every sheet when it opens the workbook, and has no streaming reader for them), then read
//! from the chosen sheet's grid.

use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{
    Data, ExcelDateTime, Ods, Range, Reader, Sheet, SheetType, SheetVisible, Xls, Xlsx,
    open_workbook_from_rs,
};

use super::columns::{Rows, table_from_rows};
use super::ole;
use super::{Cell, Format, HeaderRow, MAX_COLUMNS, MAX_RECORD_BYTES, ReadError, SourceRow, Table};

/// Rows the XLSX reader thread may read ahead of the consumer.
const READ_AHEAD_ROWS: usize = 256;

/// Runs a third-party parser, turning a panic on a malformed file into an error for that file.
fn guarded<T>(parse: impl FnOnce() -> Result<T, ReadError>) -> Result<T, ReadError> {
    catch_unwind(AssertUnwindSafe(parse)).unwrap_or_else(|_| {
        Err(ReadError::Spreadsheet(
            "the spreadsheet is malformed".to_owned(),
        ))
    })
}

fn spreadsheet_error(error: impl std::fmt::Display) -> ReadError {
    ReadError::Spreadsheet(error.to_string())
}

/// The worksheets of a workbook, in order; chart, dialog and macro sheets hold no table.
pub(super) fn list_sheets<R: Read + Seek>(
    mut reader: R,
    format: Format,
) -> Result<Vec<String>, ReadError> {
    check_compound_file(&mut reader)?;
    let metadata = guarded(|| match format {
        Format::Xlsx => open_workbook_from_rs::<Xlsx<R>, R>(reader)
            .map(|workbook| workbook.sheets_metadata().to_vec())
            .map_err(spreadsheet_error),
        Format::Xls => open_workbook_from_rs::<Xls<R>, R>(reader)
            .map(|workbook| workbook.sheets_metadata().to_vec())
            .map_err(spreadsheet_error),
        Format::Ods => open_workbook_from_rs::<Ods<R>, R>(reader)
            .map(|workbook| workbook.sheets_metadata().to_vec())
            .map_err(spreadsheet_error),
        Format::Csv | Format::Vcard => Ok(Vec::new()),
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

pub(super) fn open_xlsx<R: Read + Seek + Send + 'static>(
    mut reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
) -> Result<Table, ReadError> {
    check_compound_file(&mut reader)?;
    let workbook: Xlsx<R> = guarded(|| open_workbook_from_rs(reader).map_err(spreadsheet_error))?;
    let name = choose_sheet(workbook.sheets_metadata(), sheet)?;
    // calamine's streaming cell reader borrows the workbook, so it cannot be returned inside an
    // iterator; a thread owns both and hands rows over a bounded channel, which keeps memory
    // constant. The thread ends when the rows run out or the receiver is dropped.
    let (sender, receiver) = sync_channel(READ_AHEAD_ROWS);
    std::thread::Builder::new()
        .name("xlsx-reader".to_owned())
        .spawn(move || stream_xlsx(workbook, &name, &sender))?;
    let rows: Rows = Box::new(ChannelRows {
        receiver,
        done: false,
    });
    table_from_rows(rows, header)
}

enum Message {
    Row(Result<SourceRow, ReadError>),
    Done,
}

fn stream_xlsx<R: Read + Seek>(mut workbook: Xlsx<R>, name: &str, sender: &SyncSender<Message>) {
    let mut cells = match workbook.worksheet_cells_reader(name) {
        Ok(cells) => cells,
        Err(error) => {
            let _ = sender.send(Message::Row(Err(spreadsheet_error(error))));
            let _ = sender.send(Message::Done);
            return;
        }
    };
    let dimensions = cells.dimensions();
    let first_column = if dimensions.start <= dimensions.end {
        dimensions.start.1
    } else {
        0
    };
    let mut row: Option<RowBuilder> = None;
    loop {
        match cells.next_cell() {
            Ok(Some(cell)) => {
                let (number, column) = cell.get_position();
                let number = u64::from(number) + 1;
                // A new row: hand over the one before.
                if row.as_ref().is_some_and(|row| row.number != number)
                    && let Some(finished) = row.take().and_then(RowBuilder::finish)
                    && sender.send(Message::Row(finished)).is_err()
                {
                    return;
                }
                let value = Data::from(cell.get_value().clone());
                row.get_or_insert_with(|| RowBuilder::new(number, first_column))
                    .add(column, cell_of(&value));
            }
            Ok(None) => break,
            Err(error) => {
                if let Some(finished) = row.take().and_then(RowBuilder::finish) {
                    let _ = sender.send(Message::Row(finished));
                }
                let _ = sender.send(Message::Row(Err(spreadsheet_error(error))));
                let _ = sender.send(Message::Done);
                return;
            }
        }
    }
    if let Some(finished) = row.take().and_then(RowBuilder::finish) {
        let _ = sender.send(Message::Row(finished));
    }
    let _ = sender.send(Message::Done);
}

struct ChannelRows {
    receiver: Receiver<Message>,
    done: bool,
}

impl Iterator for ChannelRows {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.receiver.recv() {
            Ok(Message::Row(row)) => Some(row),
            Ok(Message::Done) => {
                self.done = true;
                None
            }
            // The reader thread died without saying it was done: a panic in the parser.
            Err(_) => {
                self.done = true;
                Some(Err(ReadError::Spreadsheet(
                    "the spreadsheet is malformed; reading stopped".to_owned(),
                )))
            }
        }
    }
}

/// See [`ole`](super::ole): a damaged compound file must not reach calamine. XLS files are
/// compound files, and calamine's XLSX reader opens any file that looks like one (a
/// password-protected XLSX is one), so whatever the format, such a file is checked first.
fn check_compound_file<R: Read + Seek>(reader: &mut R) -> Result<(), ReadError> {
    let mut magic = Vec::new();
    reader.seek(SeekFrom::Start(0))?;
    reader.take(8).read_to_end(&mut magic)?;
    if ole::is_compound_file(&magic) {
        ole::check(reader).map_err(ReadError::Spreadsheet)?;
    }
    reader.seek(SeekFrom::Start(0))?;
    Ok(())
}

pub(super) fn open_xls<R: Read + Seek + Send + 'static>(
    mut reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
) -> Result<Table, ReadError> {
    check_compound_file(&mut reader)?;
    guarded(|| {
        let mut workbook: Xls<R> = open_workbook_from_rs(reader).map_err(spreadsheet_error)?;
        let name = choose_sheet(workbook.sheets_metadata(), sheet)?;
        workbook.worksheet_range(&name).map_err(spreadsheet_error)
    })
    .and_then(|range| table_from_range(range, header))
}

pub(super) fn open_ods<R: Read + Seek + Send + 'static>(
    mut reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
) -> Result<Table, ReadError> {
    check_compound_file(&mut reader)?;
    guarded(|| {
        let mut workbook: Ods<R> = open_workbook_from_rs(reader).map_err(spreadsheet_error)?;
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

/// Collects one sheet row's cells, enforcing the limits.
struct RowBuilder {
    number: u64,
    first_column: u32,
    cells: Vec<Cell>,
    bytes: usize,
    error: Option<ReadError>,
}

impl RowBuilder {
    fn new(number: u64, first_column: u32) -> Self {
        Self {
            number,
            first_column,
            cells: Vec::new(),
            bytes: 0,
            error: None,
        }
    }

    fn add(&mut self, column: u32, cell: Cell) {
        // Formatted but empty cells can lie anywhere, even past the column limit.
        if self.error.is_some() || cell.text.is_empty() {
            return;
        }
        let Some(index) = column.checked_sub(self.first_column) else {
            self.error = Some(ReadError::Cell {
                row: self.number,
                column: column_letters(column),
                message: "the cell lies outside the range the sheet declares".to_owned(),
            });
            return;
        };
        let index = index as usize;
        if index >= MAX_COLUMNS {
            self.error = Some(ReadError::TooManyColumns {
                row: self.number,
                columns: index + 1,
            });
            return;
        }
        self.bytes += cell.text.len();
        if self.bytes > MAX_RECORD_BYTES {
            self.error = Some(ReadError::RecordTooLarge { row: self.number });
            return;
        }
        if self.cells.len() <= index {
            self.cells.resize_with(index + 1, Cell::default);
        }
        if let Some(slot) = self.cells.get_mut(index) {
            *slot = cell;
        }
    }

    /// The row, or `None` for an empty one.
    fn finish(self) -> Option<Result<SourceRow, ReadError>> {
        if let Some(error) = self.error {
            return Some(Err(error));
        }
        if self.cells.is_empty() {
            return None;
        }
        Some(Ok(SourceRow {
            number: self.number,
            cells: self.cells,
        }))
    }
}

/// "A" for the first column (0), "Z", "AA", … as spreadsheets name them.
pub(super) fn column_letters(index: u32) -> String {
    let mut letters = Vec::new();
    let mut rest = u64::from(index) + 1;
    while rest > 0 {
        let digit = ((rest - 1) % 26) as u8;
        letters.push(char::from(b'A' + digit));
        rest = (rest - 1) / 26;
    }
    letters.iter().rev().collect()
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

/// Numbers as a person would type them: whole numbers without fraction or exponent (a phone
/// number stored as 14155552671.0 reads "14155552671"), others rounded to the 15 significant
/// digits Excel shows (so 0.1 + 0.2 reads "0.3"), exponents only for the very large or small.
pub(super) fn number_text(value: f64) -> String {
    /// Below 2^53 every whole number is exact.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if !value.is_finite() {
        return String::new();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    if value.fract() == 0.0 && value.abs() < EXACT {
        return format!("{value:.0}");
    }
    let rounded: f64 = format!("{value:.14e}").parse().unwrap_or(value);
    if rounded.fract() == 0.0 && rounded.abs() < 1e21 {
        format!("{rounded:.0}")
    } else if (1e-7..1e21).contains(&rounded.abs()) {
        format!("{rounded}")
    } else {
        format!("{rounded:e}")
    }
}

/// Dates and times as ISO 8601: "2024-03-01", "2024-03-01T09:30:00", "09:30:00" for a time of
/// day alone, durations as "PT36H0M0S".
fn date_time_text(value: &ExcelDateTime) -> String {
    let serial = value.as_f64();
    if !serial.is_finite() {
        return String::new();
    }
    if value.is_duration() {
        let millis = (serial * 86_400_000.0).round();
        let sign = if millis < 0.0 { "-" } else { "" };
        let millis = millis.abs().min(1e15) as u64;
        let (hours, minutes, seconds, millis) = (
            millis / 3_600_000,
            millis / 60_000 % 60,
            millis / 1000 % 60,
            millis % 1000,
        );
        return if millis == 0 {
            format!("{sign}PT{hours}H{minutes}M{seconds}S")
        } else {
            format!("{sign}PT{hours}H{minutes}M{seconds}.{millis:03}S")
        };
    }
    let (year, month, day, hour, minute, second, millis) = value.to_ymd_hms_milli();
    let time = if millis == 0 {
        format!("{hour:02}:{minute:02}:{second:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}.{millis:03}")
    };
    if (0.0..1.0).contains(&serial) {
        time
    } else if (hour, minute, second, millis) == (0, 0, 0, 0) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{time}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::ExcelDateTimeType;

    #[test]
    fn numbers_read_as_typed() {
        assert_eq!(number_text(14155552671.0), "14155552671");
        assert_eq!(number_text(-0.0), "0");
        assert_eq!(number_text(42.0), "42");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(1e25), "1e25");
        assert_eq!(number_text(1.5e-10), "1.5e-10");
        assert_eq!(number_text(f64::NAN), "");
    }

    #[test]
    fn dates_read_as_iso_8601() {
        let date = |serial, kind| date_time_text(&ExcelDateTime::new(serial, kind, false));
        assert_eq!(date(45352.0, ExcelDateTimeType::DateTime), "2024-03-01");
        assert_eq!(
            date(45_352.396_527_777_78, ExcelDateTimeType::DateTime),
            "2024-03-01T09:31:00"
        );
        assert_eq!(date(0.5, ExcelDateTimeType::DateTime), "12:00:00");
        assert_eq!(date(1.5, ExcelDateTimeType::TimeDelta), "PT36H0M0S");
        assert_eq!(date(f64::NAN, ExcelDateTimeType::DateTime), "");
    }

    #[test]
    fn column_letters_as_spreadsheets_name_them() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(16383), "XFD");
        assert_eq!(column_letters(u32::MAX), "MWLQKWV");
    }
}
