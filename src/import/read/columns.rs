//! Turning a stream of rows into a [`Table`]: deciding whether the first row holds column names,
//! naming the columns, padding short rows.

use std::collections::{HashSet, VecDeque};

use super::{Cell, HeaderRow, MAX_COLUMNS, ReadError, SourceRow, Table};

pub(super) type Rows = Box<dyn Iterator<Item = Result<SourceRow, ReadError>> + Send>;

/// How many rows after the first are read ahead to learn how wide the table is. Rows wider than
/// these keep their extra cells, which [`column_label`] names.
const LOOKAHEAD_ROWS: usize = 50;

/// The name of a column that has none: "Column 1" for the first (index 0).
pub fn column_label(index: usize) -> String {
    format!("Column {}", index.saturating_add(1))
}

/// Builds a table from the non-empty rows of a file, reading the first rows ahead.
pub(super) fn table_from_rows(mut rows: Rows, header: HeaderRow) -> Result<Table, ReadError> {
    let first = match rows.next() {
        None => {
            return Ok(Table {
                headers: Vec::new(),
                has_header_row: false,
                rows: Box::new(std::iter::empty()),
            });
        }
        Some(Err(error)) => return Err(error),
        Some(Ok(first)) => first,
    };
    let mut lookahead = VecDeque::new();
    for row in rows.by_ref() {
        let fatal = row.as_ref().is_err_and(ReadError::is_fatal);
        lookahead.push_back(row);
        if fatal || lookahead.len() >= LOOKAHEAD_ROWS {
            break;
        }
    }
    let width = lookahead
        .iter()
        .filter_map(|row| row.as_ref().ok())
        .map(|row| row.cells.len())
        .chain([first.cells.len()])
        .max()
        .unwrap_or(0)
        .min(MAX_COLUMNS);
    let has_header_row = match header {
        HeaderRow::Detect => !looks_like_data(&first.cells),
        HeaderRow::Present => true,
        HeaderRow::Absent => false,
    };
    let headers = if has_header_row {
        header_names(&first.cells, width)
    } else {
        lookahead.push_front(Ok(first));
        (0..width).map(column_label).collect()
    };
    let rows = lookahead.into_iter().chain(rows).map(move |row| {
        row.map(|mut row| {
            if row.cells.len() < width {
                row.cells.resize_with(width, Cell::default);
            }
            row
        })
    });
    Ok(Table {
        headers,
        has_header_row,
        rows: Box::new(rows),
    })
}

/// A first row holding a phone number or an email address is data, not column names: a list of
/// bare phone numbers is the most common headerless upload.
pub(super) fn looks_like_data(cells: &[Cell]) -> bool {
    cells
        .iter()
        .any(|cell| is_phone_like(&cell.text) || is_email_like(&cell.text))
}

/// An optional `+`, then at least seven digits, allowing spaces, dashes, dots and parentheses.
pub(super) fn is_phone_like(text: &str) -> bool {
    let text = text.trim();
    let rest = text.strip_prefix('+').unwrap_or(text);
    let mut digits = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    digits >= 7
}

pub(super) fn is_email_like(text: &str) -> bool {
    let text = text.trim();
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !text.contains(char::is_whitespace)
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Column names from a header row: whitespace runs (a header cell may hold a line break) become
/// one space, blank cells become "Column N", repeated names (compared case-insensitively) get
/// " (2)", " (3)"… so that every column can be told apart.
pub(super) fn header_names(cells: &[Cell], width: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    (0..width.max(cells.len()).min(MAX_COLUMNS))
        .map(|index| {
            let text = cells
                .get(index)
                .map(|cell| cell.text.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let base = if text.is_empty() {
                column_label(index)
            } else {
                text
            };
            let mut name = base.clone();
            let mut suffix = 2;
            while !seen.insert(name.to_lowercase()) {
                name = format!("{base} ({suffix})");
                suffix += 1;
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(texts: &[&str]) -> Vec<Cell> {
        texts
            .iter()
            .map(|text| Cell {
                text: (*text).to_owned(),
                numeric: false,
            })
            .collect()
    }

    #[test]
    fn phone_like_values() {
        for phone in [
            "+14155552671",
            "(415) 555-2671",
            "030 1234567",
            "+49.30.123.45.67",
        ] {
            assert!(is_phone_like(phone), "{phone}");
        }
        for not_phone in ["Phone", "123456", "+", "", "415-555-CALL", "1 2 3"] {
            assert!(!is_phone_like(not_phone), "{not_phone}");
        }
    }

    #[test]
    fn first_row_with_data_is_not_a_header() {
        assert!(looks_like_data(&cells(&["Ada", "+44 20 7946 0958"])));
        assert!(looks_like_data(&cells(&["ada@example.com"])));
        assert!(!looks_like_data(&cells(&["Name", "Phone", "E-mail (a@b)"])));
    }

    #[test]
    fn blank_and_repeated_header_names() {
        let names = header_names(
            &cells(&["Phone", "", "phone", "Phone (2)", " First\nName "]),
            7,
        );
        assert_eq!(
            names,
            [
                "Phone",
                "Column 2",
                "phone (2)",
                "Phone (2) (2)",
                "First Name",
                "Column 6",
                "Column 7"
            ]
        );
    }
}
