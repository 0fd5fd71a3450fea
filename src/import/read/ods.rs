//! ODS workbooks (OpenDocument), read with a streaming XML parser over the archive's
//! `content.xml`.
//!
//! Written for Roster rather than taken from calamine, which read them before: calamine loads
//! every sheet of the workbook whole as two dense grids (values and formulas, 56 bytes a cell, up
//! to 100,000,000 cells), and repeats a row or cell as often as the file says, so a 2 MB file
//! could take gigabytes. Here the chosen sheet streams one row at a time; a repeated row or cell
//! is repeated only while it holds something and within the caps.

use std::collections::HashSet;
use std::io::{Read, Seek};

use quick_xml::events::{BytesStart, Event};

use super::cells::{RowBuilder, number_text};
use super::columns::{Rows, table_from_rows};
use super::limits::{Cap, ENTRY_OVERHEAD, Held, Limits};
use super::reader_thread::{RowSender, spawn_rows};
use super::zip_container::{Archive, Xml, attribute, reference_text, xml_error};
use super::{Cell, HeaderRow, MAX_RECORD_BYTES, ReadError, SourceRow, Table};

const CONTENT: &str = "content.xml";

/// The sheets of a workbook, in order.
pub(super) fn list_sheets<R: Read + Seek>(
    reader: R,
    limits: &Limits,
) -> Result<Vec<String>, ReadError> {
    let mut archive = Archive::open(reader, limits)?;
    check_not_encrypted(&mut archive)?;
    let mut names = Vec::new();
    let mut held = Held::new(limits);
    let Some(mut xml) = archive.xml(CONTENT)? else {
        return Err(missing_content());
    };
    let mut buf = Vec::new();
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|error| xml_error(error, CONTENT, limits))?;
        match event {
            Event::Start(ref element) | Event::Empty(ref element)
                if element.name().as_ref() == "table:table" =>
            {
                let name = attribute(element, "name").unwrap_or_default();
                held.take(name.len() + ENTRY_OVERHEAD)?;
                names.push(name);
                if matches!(event, Event::Start(_)) {
                    skip(&mut xml, element, limits)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(names)
}

/// Opens the sheet asked for, or the first visible one.
pub(super) fn open<R: Read + Seek + Send + 'static>(
    reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
    limits: &Limits,
) -> Result<Table, ReadError> {
    let mut archive = Archive::open(reader, limits)?;
    check_not_encrypted(&mut archive)?;
    let requested = sheet.map(str::to_owned);
    let limits_copy = *limits;
    let rows: Rows = spawn_rows("ods-reader", move |sender| {
        let limits = limits_copy;
        let wanted = match requested {
            Some(name) => Wanted::Named(name),
            None => Wanted::FirstVisible,
        };
        match read_content(&mut archive, &wanted, &limits, sender)? {
            Outcome::Read => Ok(()),
            // Every sheet is hidden: the first one, as spreadsheet programs show it.
            Outcome::NotFound(names) if wanted == Wanted::FirstVisible => {
                let Some(first) = names.into_iter().next() else {
                    return Err(ReadError::NoSheets);
                };
                match read_content(&mut archive, &Wanted::Named(first), &limits, sender)? {
                    Outcome::Read => Ok(()),
                    Outcome::NotFound(_) => Err(ReadError::NoSheets),
                }
            }
            Outcome::NotFound(available) => match wanted {
                Wanted::Named(requested) => Err(ReadError::UnknownSheet {
                    requested,
                    available,
                }),
                Wanted::FirstVisible => Err(ReadError::NoSheets),
            },
        }
    })?;
    table_from_rows(rows, header)
}

#[derive(PartialEq, Eq)]
enum Wanted {
    Named(String),
    FirstVisible,
}

enum Outcome {
    Read,
    /// No sheet was the one wanted; these are the sheets there are.
    NotFound(Vec<String>),
}

fn missing_content() -> ReadError {
    ReadError::Spreadsheet("the ODS file has no content.xml".to_owned())
}

/// An encrypted ODS file inflates to noise; say why instead.
fn check_not_encrypted<R: Read + Seek>(archive: &mut Archive<R>) -> Result<(), ReadError> {
    let limits = *archive.limits();
    let part = "META-INF/manifest.xml";
    let Some(mut xml) = archive.xml(part)? else {
        return Ok(());
    };
    let mut buf = Vec::new();
    loop {
        match xml
            .read_event_into(&mut buf)
            .map_err(|error| xml_error(error, part, &limits))?
        {
            Event::Start(element) | Event::Empty(element)
                if element.local_name().as_ref() == "encryption-data" =>
            {
                return Err(ReadError::Spreadsheet(
                    "the spreadsheet is password-protected; save it without a password".to_owned(),
                ));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

/// Skips an element whose start was just read, with everything inside it.
fn skip<R: Read + Seek>(
    xml: &mut Xml<'_, R>,
    start: &BytesStart<'_>,
    limits: &Limits,
) -> Result<(), ReadError> {
    let end = start.to_end().into_owned();
    xml.read_to_end_into(end.name(), &mut Vec::new())
        .map_err(|error| xml_error(error, CONTENT, limits))?;
    Ok(())
}

/// Reads `content.xml` up to the sheet wanted and streams its rows.
fn read_content<R: Read + Seek>(
    archive: &mut Archive<R>,
    wanted: &Wanted,
    limits: &Limits,
    sender: &RowSender,
) -> Result<Outcome, ReadError> {
    let Some(mut xml) = archive.xml(CONTENT)? else {
        return Err(missing_content());
    };
    let mut held = Held::new(limits);
    // Table styles that hide a sheet (`table:display="false"`); they precede the sheets.
    let mut hidden_styles: HashSet<String> = HashSet::new();
    let mut style: Option<String> = None;
    let mut names = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|error| xml_error(error, CONTENT, limits))?;
        match event {
            Event::Start(ref element) | Event::Empty(ref element) => {
                match element.name().as_ref() {
                    "style:style" => {
                        style = (matches!(event, Event::Start(_))
                            && attribute(element, "family").as_deref() == Some("table"))
                        .then(|| attribute(element, "name"))
                        .flatten();
                    }
                    "style:table-properties" => {
                        if let Some(name) = style.take()
                            && attribute(element, "display").as_deref() == Some("false")
                        {
                            held.take(name.len() + ENTRY_OVERHEAD)?;
                            hidden_styles.insert(name);
                        }
                    }
                    "table:table" => {
                        let name = attribute(element, "name").unwrap_or_default();
                        let visible = attribute(element, "style-name")
                            .is_none_or(|style| !hidden_styles.contains(&style));
                        let chosen = match wanted {
                            Wanted::Named(wanted) => *wanted == name,
                            Wanted::FirstVisible => visible,
                        };
                        if chosen {
                            if matches!(event, Event::Start(_)) {
                                let sheet = SheetReader {
                                    xml: &mut xml,
                                    limits,
                                };
                                sheet.stream(sender)?;
                            }
                            return Ok(Outcome::Read);
                        }
                        held.take(name.len() + ENTRY_OVERHEAD)?;
                        names.push(name);
                        if matches!(event, Event::Start(_)) {
                            skip(&mut xml, element, limits)?;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(ref element) if element.name().as_ref() == "style:style" => style = None,
            Event::Eof => return Ok(Outcome::NotFound(names)),
            _ => {}
        }
        buf.clear();
    }
}

/// A `number-…-repeated` attribute: how many times a row or cell stands.
fn repeat(element: &BytesStart<'_>, local: &str) -> u64 {
    attribute(element, local)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

/// One cell while its text is read.
struct CellInProgress {
    repeat: u64,
    value_type: Option<String>,
    /// The typed value from the cell's attributes (number, date, time or boolean).
    value: Option<String>,
    text: String,
    paragraphs: usize,
}

impl CellInProgress {
    /// One pass over the attributes, without copying those not needed: this runs for every
    /// cell of the sheet. Values are numbers, dates and booleans, which hold no entities.
    fn new(element: &BytesStart<'_>) -> Self {
        let mut cell = Self {
            repeat: 1,
            value_type: None,
            value: None,
            text: String::new(),
            paragraphs: 0,
        };
        let mut values: [Option<String>; 4] = Default::default();
        for attribute in element.attributes().flatten() {
            let slot = match attribute.key.local_name().as_ref() {
                "value-type" if cell.value_type.is_none() => {
                    cell.value_type = Some(attribute.value.into_owned());
                    continue;
                }
                "number-columns-repeated" => {
                    cell.repeat = attribute.value.trim().parse::<u64>().unwrap_or(1).max(1);
                    continue;
                }
                "value" => 0,
                "date-value" => 1,
                "time-value" => 2,
                "boolean-value" => 3,
                _ => continue,
            };
            if let Some(value) = values.get_mut(slot) {
                *value = Some(attribute.value.into_owned());
            }
        }
        let slot = match cell.value_type.as_deref() {
            Some("float" | "percentage" | "currency") => Some(0),
            Some("date") => Some(1),
            Some("time") => Some(2),
            Some("boolean") => Some(3),
            _ => None,
        };
        cell.value = slot.and_then(|slot| values.get_mut(slot)?.take());
        cell
    }

    fn push(&mut self, text: &str) {
        // Past the longest row there is no point in keeping more: the row is refused anyway.
        if self.text.len() <= MAX_RECORD_BYTES {
            self.text.push_str(text);
        }
    }

    fn push_spaces(&mut self, count: u64) {
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(self.text.len());
        let count = usize::try_from(count).unwrap_or(usize::MAX).min(room);
        self.text.extend(std::iter::repeat_n(' ', count));
    }

    fn into_cell(self) -> Cell {
        let text = |text: &str| Cell {
            text: text.trim().to_owned(),
            numeric: false,
        };
        match (self.value_type.as_deref(), self.value) {
            (Some("float" | "percentage" | "currency"), Some(value)) => {
                match value.trim().parse::<f64>() {
                    Ok(number) => Cell {
                        text: number_text(number),
                        numeric: true,
                    },
                    Err(_) => text(&self.text),
                }
            }
            (Some("boolean"), Some(value)) => text(match value.trim() {
                "true" | "1" => "true",
                "false" | "0" => "false",
                _ => "",
            }),
            (Some("date" | "time"), Some(value)) => text(&value),
            _ => text(&self.text),
        }
    }
}

struct SheetReader<'x, 'a, R: Read + Seek> {
    xml: &'x mut Xml<'a, R>,
    limits: &'x Limits,
}

impl<R: Read + Seek> SheetReader<'_, '_, R> {
    /// Streams the rows of the sheet whose start tag was just read, up to its end.
    fn stream(self, sender: &RowSender) -> Result<(), ReadError> {
        let limits = self.limits;
        let mut buf = Vec::new();
        // The next row's number, and the current row with how many times it stands.
        let mut next_row = 1u64;
        let mut row: Option<(RowBuilder, u64)> = None;
        let mut next_column = 0u32;
        let mut cell: Option<CellInProgress> = None;
        // Sheets inside this sheet (ODF allows tables in cells): their rows are not this sheet's.
        let mut depth = 0usize;
        loop {
            let event = self
                .xml
                .read_event_into(&mut buf)
                .map_err(|error| xml_error(error, CONTENT, limits))?;
            match event {
                Event::Start(ref element) | Event::Empty(ref element) => {
                    let empty = matches!(event, Event::Empty(_));
                    match element.name().as_ref() {
                        "table:table" if !empty => depth += 1,
                        "table:table-row" if depth == 0 => {
                            let times = repeat(element, "number-rows-repeated");
                            if empty {
                                next_row = next_row.saturating_add(times);
                            } else {
                                row = Some((RowBuilder::new(next_row, 0), times));
                                next_column = 0;
                            }
                        }
                        "table:table-cell" | "table:covered-table-cell" if depth == 0 => {
                            let started = CellInProgress::new(element);
                            if empty {
                                next_column = add_cell(&mut row, next_column, started);
                            } else {
                                cell = Some(started);
                            }
                        }
                        // Comments and pictures in a cell are not its value.
                        "office:annotation" | "draw:frame" if !empty => {
                            skip(self.xml, element, limits)?;
                        }
                        "text:p" | "text:h" => {
                            if let Some(cell) = cell.as_mut() {
                                if cell.paragraphs > 0 {
                                    cell.push("\n");
                                }
                                cell.paragraphs += 1;
                            }
                        }
                        "text:s" => {
                            if let Some(cell) = cell.as_mut() {
                                cell.push_spaces(repeat(element, "c"));
                            }
                        }
                        "text:tab" => {
                            if let Some(cell) = cell.as_mut() {
                                cell.push("\t");
                            }
                        }
                        "text:line-break" => {
                            if let Some(cell) = cell.as_mut() {
                                cell.push("\n");
                            }
                        }
                        _ => {}
                    }
                }
                Event::Text(text) => {
                    if let Some(cell) = cell.as_mut() {
                        cell.push(&text.xml10_content());
                    }
                }
                Event::CData(data) => {
                    if let Some(cell) = cell.as_mut() {
                        cell.push(&data);
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(cell) = cell.as_mut() {
                        cell.push(&reference_text(&reference).unwrap_or_default());
                    }
                }
                Event::End(ref element) => match element.name().as_ref() {
                    "table:table" if depth > 0 => depth -= 1,
                    "table:table" => break,
                    "table:table-cell" | "table:covered-table-cell" if depth == 0 => {
                        if let Some(done) = cell.take() {
                            next_column = add_cell(&mut row, next_column, done);
                        }
                    }
                    "table:table-row" if depth == 0 => {
                        if let Some((builder, times)) = row.take() {
                            let Some(done) = builder.finish() else {
                                next_row = next_row.saturating_add(times);
                                buf.clear();
                                continue;
                            };
                            let last = next_row.saturating_add(times - 1);
                            if last > limits.sheet_rows {
                                return Err(Cap::SheetRows.exceeded(limits));
                            }
                            if !send_repeated(done, times, sender) {
                                return Ok(());
                            }
                            next_row = last.saturating_add(1);
                        }
                    }
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(())
    }
}

/// Adds a finished cell (as many times as it repeats) to the row; returns the next column.
fn add_cell(row: &mut Option<(RowBuilder, u64)>, column: u32, cell: CellInProgress) -> u32 {
    let times = u32::try_from(cell.repeat).unwrap_or(u32::MAX);
    let next = column.saturating_add(times);
    let Some((builder, _)) = row.as_mut() else {
        return next;
    };
    let cell = cell.into_cell();
    if cell.text.is_empty() {
        return next;
    }
    // The row builder refuses the row once it is too wide, which ends this loop early.
    for offset in 0..times {
        if builder.is_refused() {
            break;
        }
        builder.add(column.saturating_add(offset), cell.clone());
    }
    next
}

/// Sends a row, and its copies when it repeats; `false` once the consumer is gone.
fn send_repeated(row: Result<SourceRow, ReadError>, times: u64, sender: &RowSender) -> bool {
    let Ok(first) = row else {
        return sender.send(row);
    };
    for offset in 0..times {
        let mut copy = first.clone();
        copy.number = first.number + offset;
        if !sender.send(Ok(copy)) {
            return false;
        }
    }
    true
}
