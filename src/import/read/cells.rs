//! One spreadsheet row's cells as text, whatever the format they came from: how numbers, dates
//! and booleans read, how columns are named, and the per-row limits.

use calamine::ExcelDateTime;

use super::{Cell, MAX_COLUMNS, MAX_RECORD_BYTES, ReadError, SourceRow};

/// Collects one sheet row's cells, enforcing the limits.
pub(super) struct RowBuilder {
    number: u64,
    first_column: u32,
    cells: Vec<Cell>,
    bytes: usize,
    error: Option<ReadError>,
}

impl RowBuilder {
    pub(super) fn new(number: u64, first_column: u32) -> Self {
        Self {
            number,
            first_column,
            cells: Vec::new(),
            bytes: 0,
            error: None,
        }
    }

    pub(super) fn add(&mut self, column: u32, cell: Cell) {
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

    /// Whether the row is refused already: no cell added from now on changes it.
    pub(super) fn is_refused(&self) -> bool {
        self.error.is_some()
    }

    /// The row, or `None` for an empty one.
    pub(super) fn finish(self) -> Option<Result<SourceRow, ReadError>> {
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
pub(super) fn date_time_text(value: &ExcelDateTime) -> String {
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
