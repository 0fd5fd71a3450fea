//! XLSX workbooks (Office Open XML), read with a streaming XML parser over the archive.
//!
//! Written for Roster rather than taken from calamine, which read them before: calamine loads a
//! workbook's styles by copying every font into every cell format, reserves room for as many
//! shared strings as the file claims, and buffers each XML text whole, so a 1 MB file could make
//! it allocate gigabytes. Here every part is read under the caps of [`Limits`], and what is held
//! for the whole reading (the sheet list, the shared strings, the cell formats) is counted against
//! [`Limits::held_bytes`]. The sheet itself streams, one row at a time.

use std::collections::HashMap;
use std::io::{Read, Seek};

use calamine::{ExcelDateTime, ExcelDateTimeType};
use quick_xml::events::Event;

use super::cells::{RowBuilder, date_time_text, number_text};
use super::columns::{Rows, table_from_rows};
use super::limits::{Cap, ENTRY_OVERHEAD, Held, Limits};
use super::reader_thread::{RowSender, spawn_rows};
use super::zip_container::{Archive, Xml, attribute, raw_attribute, reference_text, xml_error};
use super::{Cell, HeaderRow, MAX_RECORD_BYTES, ReadError, Table};

/// The worksheets of a workbook, in workbook order (chart and macro sheets hold no table).
pub(super) fn list_sheets<R: Read + Seek>(
    reader: R,
    limits: &Limits,
) -> Result<Vec<String>, ReadError> {
    let mut archive = Archive::open(reader, limits)?;
    let mut held = Held::new(limits);
    let book = Workbook::read(&mut archive, &mut held)?;
    Ok(book.sheets.into_iter().map(|sheet| sheet.name).collect())
}

/// Opens the sheet asked for, or the first visible worksheet.
pub(super) fn open<R: Read + Seek + Send + 'static>(
    reader: R,
    sheet: Option<&str>,
    header: HeaderRow,
    limits: &Limits,
) -> Result<Table, ReadError> {
    let mut archive = Archive::open(reader, limits)?;
    let mut held = Held::new(limits);
    let book = Workbook::read(&mut archive, &mut held)?;
    let path = book.choose(sheet)?;
    let strings = SharedStrings::read(&mut archive, &book.shared_strings, &mut held)?;
    let styles = Styles::read(&mut archive, &book.styles, &mut held)?;
    let date1904 = book.date1904;
    let rows: Rows = spawn_rows("xlsx-reader", move |sender| {
        let limits = *archive.limits();
        let Some(xml) = archive.xml(&path)? else {
            return Err(ReadError::Spreadsheet(format!(
                "the workbook names a sheet at {path}, which it does not contain"
            )));
        };
        let sheet = SheetReader {
            xml,
            part: &path,
            limits: &limits,
            strings: &strings,
            styles: &styles,
            date1904,
        };
        sheet.stream(sender)
    })?;
    table_from_rows(rows, header)
}

struct SheetEntry {
    name: String,
    /// The part holding the sheet, e.g. `xl/worksheets/sheet1.xml`.
    path: String,
    visible: bool,
}

/// The workbook part and its relationships: which sheets there are and where.
struct Workbook {
    /// Worksheets only, in workbook order.
    sheets: Vec<SheetEntry>,
    shared_strings: String,
    styles: String,
    date1904: bool,
}

impl Workbook {
    fn read<R: Read + Seek>(archive: &mut Archive<R>, held: &mut Held) -> Result<Self, ReadError> {
        let package = relationships(archive, "_rels/.rels", "", held)?;
        let workbook = package
            .values()
            .find(|(kind, _)| kind.ends_with("/officeDocument"))
            .map_or_else(
                || "xl/workbook.xml".to_owned(),
                |(_, target)| target.clone(),
            );
        let directory = workbook
            .rfind('/')
            .map_or("", |slash| &workbook[..=slash])
            .to_owned();
        let file = &workbook[directory.len()..];
        let parts = relationships(
            archive,
            &format!("{directory}_rels/{file}.rels"),
            &directory,
            held,
        )?;
        let part_of = |suffix: &str, default: &str| {
            parts
                .values()
                .find(|(kind, _)| kind.ends_with(suffix))
                .map_or_else(
                    || format!("{directory}{default}"),
                    |(_, target)| target.clone(),
                )
        };
        let shared_strings = part_of("/sharedStrings", "sharedStrings.xml");
        let styles = part_of("/styles", "styles.xml");

        let limits = *archive.limits();
        let Some(mut xml) = archive.xml(&workbook)? else {
            return Err(ReadError::Spreadsheet(format!(
                "the workbook part {workbook} is missing"
            )));
        };
        let mut sheets = Vec::new();
        let mut date1904 = false;
        let mut buf = Vec::new();
        loop {
            let event = xml
                .read_event_into(&mut buf)
                .map_err(|error| xml_error(error, &workbook, &limits))?;
            match event {
                Event::Start(element) | Event::Empty(element) => {
                    match element.local_name().as_ref() {
                        "workbookPr" => {
                            date1904 = attribute(&element, "date1904")
                                .is_some_and(|value| value == "1" || value == "true");
                        }
                        "sheet" => {
                            let name = attribute(&element, "name").unwrap_or_default();
                            let visible =
                                attribute(&element, "state").is_none_or(|state| state == "visible");
                            // The relationship id is `r:id`; its prefix varies.
                            let target = attribute(&element, "id")
                                .and_then(|id| parts.get(&id))
                                .filter(|(kind, _)| kind.ends_with("/worksheet"));
                            if let Some((_, path)) = target {
                                held.take(name.len() + path.len() + ENTRY_OVERHEAD)?;
                                sheets.push(SheetEntry {
                                    name,
                                    path: path.clone(),
                                    visible,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(Self {
            sheets,
            shared_strings,
            styles,
            date1904,
        })
    }

    /// The part of the sheet asked for, or of the first visible worksheet.
    fn choose(&self, requested: Option<&str>) -> Result<String, ReadError> {
        let chosen = match requested {
            Some(requested) => self
                .sheets
                .iter()
                .find(|sheet| sheet.name == requested)
                .ok_or_else(|| ReadError::UnknownSheet {
                    requested: requested.to_owned(),
                    available: self.sheets.iter().map(|sheet| sheet.name.clone()).collect(),
                })?,
            None => self
                .sheets
                .iter()
                .find(|sheet| sheet.visible)
                .or_else(|| self.sheets.first())
                .ok_or(ReadError::NoSheets)?,
        };
        Ok(chosen.path.clone())
    }
}

/// A relationships part: id → (type, target part), targets resolved against `directory`.
fn relationships<R: Read + Seek>(
    archive: &mut Archive<R>,
    part: &str,
    directory: &str,
    held: &mut Held,
) -> Result<HashMap<String, (String, String)>, ReadError> {
    let limits = *archive.limits();
    let mut found = HashMap::new();
    let Some(mut xml) = archive.xml(part)? else {
        return Ok(found);
    };
    let mut buf = Vec::new();
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|error| xml_error(error, part, &limits))?;
        match event {
            Event::Start(element) | Event::Empty(element)
                if element.local_name().as_ref() == "Relationship" =>
            {
                let external = attribute(&element, "TargetMode").is_some_and(|m| m == "External");
                if let (Some(id), Some(kind), Some(target), false) = (
                    attribute(&element, "Id"),
                    attribute(&element, "Type"),
                    attribute(&element, "Target"),
                    external,
                ) {
                    held.take(id.len() + kind.len() + target.len() + 2 * ENTRY_OVERHEAD)?;
                    found.insert(id, (kind, resolve(directory, &target)));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(found)
}

/// A relationship's target as a part name: absolute (`/xl/…`) or relative to `directory`.
fn resolve(directory: &str, target: &str) -> String {
    let joined = match target.strip_prefix('/') {
        Some(absolute) => absolute.to_owned(),
        None => format!("{directory}{target}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The shared string table, held in one buffer.
struct SharedStrings {
    text: String,
    /// Where each string ends in `text`.
    ends: Vec<u32>,
}

impl SharedStrings {
    fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)? as usize;
        let start = match index.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        self.text.get(start..end)
    }

    fn read<R: Read + Seek>(
        archive: &mut Archive<R>,
        part: &str,
        held: &mut Held,
    ) -> Result<Self, ReadError> {
        let limits = *archive.limits();
        let mut strings = Self {
            text: String::new(),
            ends: Vec::new(),
        };
        let Some(mut xml) = archive.xml(part)? else {
            return Ok(strings);
        };
        let mut buf = Vec::new();
        let mut item = String::new();
        // Inside <si>, and inside one of its <t> (text of phonetic runs, <rPh>, is left out).
        let (mut in_item, mut in_text) = (false, false);
        loop {
            let event = xml
                .read_event_into(&mut buf)
                .map_err(|error| xml_error(error, part, &limits))?;
            match event {
                Event::Start(element) => match element.local_name().as_ref() {
                    "si" => {
                        in_item = true;
                        item.clear();
                    }
                    "t" if in_item => in_text = true,
                    "rPh" => {
                        let end = element.to_end().into_owned();
                        xml.read_to_end_into(end.name(), &mut Vec::new())
                            .map_err(|error| xml_error(error, part, &limits))?;
                    }
                    _ => {}
                },
                Event::Empty(element) if element.local_name().as_ref() == "si" => {
                    strings.push("", held)?;
                }
                Event::End(element) => match element.local_name().as_ref() {
                    "si" => {
                        strings.push(&unescape_ooxml(&item), held)?;
                        in_item = false;
                    }
                    "t" => in_text = false,
                    _ => {}
                },
                Event::Text(text) if in_text => {
                    held.take(text.len())?;
                    item.push_str(&text.xml10_content());
                }
                Event::CData(data) if in_text => {
                    held.take(data.len())?;
                    item.push_str(&data);
                }
                Event::GeneralRef(reference) if in_text => {
                    let text = reference_text(&reference).unwrap_or_default();
                    held.take(text.len())?;
                    item.push_str(&text);
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(strings)
    }

    /// Adds a string whose text was counted as it was read.
    fn push(&mut self, text: &str, held: &mut Held) -> Result<(), ReadError> {
        held.take(std::mem::size_of::<u32>())?;
        self.text.push_str(text);
        // The held cap keeps the text far below 4 GiB.
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        Ok(())
    }
}

/// OOXML writes characters XML cannot hold as `_xHHHH_` (a line break in a cell as `_x000D_`),
/// and a literal `_x` that would read as one as `_x005F_x`.
fn unescape_ooxml(text: &str) -> String {
    if !text.contains("_x") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("_x") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let code = candidate
            .get(2..6)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter(|_| candidate.as_bytes().get(6) == Some(&b'_'))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(character) => {
                out.push(character);
                rest = &candidate[7..];
            }
            None => {
                out.push_str("_x");
                rest = &candidate[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// How a number in a cell reads, by its cell format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberKind {
    Number,
    Date,
    Duration,
}

/// The number kind of each cell format (`s` of a cell indexes this).
struct Styles {
    kinds: Vec<NumberKind>,
}

impl Styles {
    fn kind(&self, style: Option<usize>) -> NumberKind {
        style
            .and_then(|index| self.kinds.get(index).copied())
            .unwrap_or(NumberKind::Number)
    }

    fn read<R: Read + Seek>(
        archive: &mut Archive<R>,
        part: &str,
        held: &mut Held,
    ) -> Result<Self, ReadError> {
        let limits = *archive.limits();
        let mut kinds = Vec::new();
        let Some(mut xml) = archive.xml(part)? else {
            return Ok(Self { kinds });
        };
        let mut custom: HashMap<u32, NumberKind> = HashMap::new();
        let (mut in_number_formats, mut in_cell_formats) = (false, false);
        let mut buf = Vec::new();
        loop {
            let event = xml
                .read_event_into(&mut buf)
                .map_err(|error| xml_error(error, part, &limits))?;
            match event {
                Event::Start(ref element) | Event::Empty(ref element) => {
                    match element.local_name().as_ref() {
                        // Number formats of conditional formats (<dxfs>) apply to no cell.
                        "numFmts" => in_number_formats = matches!(event, Event::Start(_)),
                        "numFmt" if in_number_formats => {
                            let id = attribute(element, "numFmtId").and_then(|id| id.parse().ok());
                            let code = attribute(element, "formatCode");
                            if let (Some(id), Some(code)) = (id, code) {
                                held.take(ENTRY_OVERHEAD)?;
                                custom.insert(id, format_kind(&code));
                            }
                        }
                        "cellXfs" => in_cell_formats = matches!(event, Event::Start(_)),
                        "xf" if in_cell_formats => {
                            held.take(1)?;
                            let id = attribute(element, "numFmtId").and_then(|id| id.parse().ok());
                            kinds.push(id.map_or(NumberKind::Number, |id| {
                                custom.get(&id).copied().unwrap_or_else(|| builtin_kind(id))
                            }));
                        }
                        _ => {}
                    }
                }
                Event::End(element) => match element.local_name().as_ref() {
                    "cellXfs" => in_cell_formats = false,
                    "numFmts" => in_number_formats = false,
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(Self { kinds })
    }
}

/// Excel's built-in number formats that show dates and times (ECMA-376 18.8.30; 27–36 and
/// 50–58 are the East Asian date formats).
fn builtin_kind(id: u32) -> NumberKind {
    match id {
        14..=22 | 27..=36 | 45 | 47 | 50..=58 => NumberKind::Date,
        46 => NumberKind::Duration,
        _ => NumberKind::Number,
    }
}

/// Whether a custom number format shows a date or time: it does when its first section (the
/// one for positive numbers) has a date or time letter outside quotes, escapes and brackets; an
/// elapsed-time bracket (`[h]`, `[mm]`, `[ss]`) makes it a duration.
fn format_kind(code: &str) -> NumberKind {
    let mut chars = code.chars();
    while let Some(character) = chars.next() {
        match character {
            '"' => {
                for quoted in chars.by_ref() {
                    if quoted == '"' {
                        break;
                    }
                }
            }
            // The next character is shown as it is (or is a fill or a width).
            '\\' | '_' | '*' => {
                chars.next();
            }
            '[' => {
                let inside: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let lower = inside.to_ascii_lowercase();
                let mut letters = lower.chars();
                if let Some(first) = letters.next()
                    && matches!(first, 'h' | 'm' | 's')
                    && letters.all(|c| c == first)
                {
                    return NumberKind::Duration;
                }
            }
            ';' => break,
            'd' | 'D' | 'm' | 'M' | 'y' | 'Y' | 'h' | 'H' | 's' | 'S' => return NumberKind::Date,
            _ => {}
        }
    }
    NumberKind::Number
}

/// The column of a cell reference ("B7" → 1), or `None` when it does not start with letters.
fn column_of(reference: &str) -> Option<u32> {
    let letters = reference
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .map(|letter| u64::from(letter.to_ascii_uppercase() - b'A') + 1);
    let mut index = 0u64;
    let mut any = false;
    for letter in letters {
        any = true;
        index = index.saturating_mul(26).saturating_add(letter);
    }
    any.then(|| u32::try_from(index - 1).unwrap_or(u32::MAX))
}

/// A cell's type (its `t` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellKind {
    /// `n` or none: a number, shown by its cell format.
    Number,
    /// `s`: an index into the shared strings.
    Shared,
    /// `inlineStr`: the text in the cell.
    Inline,
    /// `str` (a formula's text) or `d` (an ISO 8601 date): the value as it is.
    Text,
    Boolean,
    Error,
}

impl CellKind {
    fn of(t: &str) -> Self {
        match t {
            "s" => CellKind::Shared,
            "inlineStr" => CellKind::Inline,
            "str" | "d" => CellKind::Text,
            "b" => CellKind::Boolean,
            "e" => CellKind::Error,
            _ => CellKind::Number,
        }
    }
}

/// One cell while its value is read.
struct CellInProgress {
    column: u32,
    kind: CellKind,
    style: Option<usize>,
    value: String,
    /// Inside <v>, or inside a <t> of an inline string (<is>), outside phonetic runs.
    in_value: bool,
    in_inline: bool,
}

struct SheetReader<'a, R: Read + Seek> {
    xml: Xml<'a, R>,
    part: &'a str,
    limits: &'a Limits,
    strings: &'a SharedStrings,
    styles: &'a Styles,
    date1904: bool,
}

impl<R: Read + Seek> SheetReader<'_, R> {
    fn stream(mut self, sender: &RowSender) -> Result<(), ReadError> {
        let mut buf = Vec::new();
        let mut first_column = 0u32;
        let mut row: Option<RowBuilder> = None;
        let mut last_row = 0u64;
        let mut next_column = 0u32;
        let mut cell: Option<CellInProgress> = None;
        loop {
            let event = self
                .xml
                .read_event_into(&mut buf)
                .map_err(|error| xml_error(error, self.part, self.limits))?;
            match event {
                Event::Start(ref element) | Event::Empty(ref element) => {
                    let empty = matches!(event, Event::Empty(_));
                    match element.local_name().as_ref() {
                        // The used range, before the rows: cells are counted from its first column.
                        "dimension" if row.is_none() && last_row == 0 => {
                            first_column = attribute(element, "ref")
                                .and_then(|range| column_of(&range))
                                .unwrap_or(0);
                        }
                        "row" => {
                            if let Some(done) = row.take().and_then(RowBuilder::finish)
                                && !sender.send(done)
                            {
                                return Ok(());
                            }
                            let number = raw_attribute(element, "r")
                                .and_then(|r| r.parse::<u64>().ok())
                                .unwrap_or(last_row.saturating_add(1));
                            if number > self.limits.sheet_rows {
                                return Err(Cap::SheetRows.exceeded(self.limits));
                            }
                            last_row = number;
                            next_column = first_column;
                            if !empty {
                                row = Some(RowBuilder::new(number, first_column));
                            }
                        }
                        "c" => {
                            // One pass over the attributes, without copying them: this runs for
                            // every cell of the sheet.
                            let (mut column, mut kind, mut style) = (None, CellKind::Number, None);
                            for attribute in element.attributes().flatten() {
                                match attribute.key.local_name().as_ref() {
                                    "r" => column = column_of(&attribute.value),
                                    "t" => kind = CellKind::of(&attribute.value),
                                    "s" => style = attribute.value.parse().ok(),
                                    _ => {}
                                }
                            }
                            let column = column.unwrap_or(next_column);
                            next_column = column.saturating_add(1);
                            if !empty {
                                cell = Some(CellInProgress {
                                    column,
                                    kind,
                                    style,
                                    value: String::new(),
                                    in_value: false,
                                    in_inline: false,
                                });
                            }
                        }
                        "v" if !empty => {
                            if let Some(cell) = cell.as_mut() {
                                cell.in_value = true;
                            }
                        }
                        "is" if !empty => {
                            if let Some(cell) = cell.as_mut() {
                                cell.in_inline = true;
                            }
                        }
                        "t" if !empty => {
                            if let Some(cell) = cell.as_mut().filter(|cell| cell.in_inline) {
                                cell.in_value = true;
                            }
                        }
                        "rPh" if !empty => {
                            let end = element.to_end().into_owned();
                            self.xml
                                .read_to_end_into(end.name(), &mut Vec::new())
                                .map_err(|error| xml_error(error, self.part, self.limits))?;
                        }
                        _ => {}
                    }
                }
                Event::Text(text) => append(&mut cell, &text.xml10_content()),
                Event::CData(data) => append(&mut cell, &data),
                Event::GeneralRef(reference) => {
                    append(&mut cell, &reference_text(&reference).unwrap_or_default());
                }
                Event::End(element) => match element.local_name().as_ref() {
                    "v" | "t" => {
                        if let Some(cell) = cell.as_mut() {
                            cell.in_value = false;
                        }
                    }
                    "is" => {
                        if let Some(cell) = cell.as_mut() {
                            cell.in_inline = false;
                        }
                    }
                    "c" => {
                        if let (Some(done), Some(row)) = (cell.take(), row.as_mut()) {
                            let column = done.column;
                            row.add(column, self.cell_text(done));
                        }
                    }
                    "row" => {
                        if let Some(done) = row.take().and_then(RowBuilder::finish)
                            && !sender.send(done)
                        {
                            return Ok(());
                        }
                    }
                    "sheetData" => break,
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if let Some(done) = row.take().and_then(RowBuilder::finish) {
            sender.send(done);
        }
        Ok(())
    }

    /// A cell's text by its type (`t`) and, for numbers, its format (`s`).
    fn cell_text(&self, cell: CellInProgress) -> Cell {
        let text = |text: &str| Cell {
            text: text.trim().to_owned(),
            numeric: false,
        };
        match cell.kind {
            CellKind::Shared => {
                let string = cell
                    .value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| self.strings.get(index));
                text(string.unwrap_or_default())
            }
            CellKind::Inline => text(&unescape_ooxml(&cell.value)),
            CellKind::Text => text(&cell.value),
            CellKind::Boolean => text(match cell.value.trim() {
                "1" | "true" => "true",
                "0" | "false" => "false",
                _ => "",
            }),
            CellKind::Error => Cell::default(),
            CellKind::Number => {
                let Ok(number) = cell.value.trim().parse::<f64>() else {
                    return text(&cell.value);
                };
                let kind = match self.styles.kind(cell.style) {
                    NumberKind::Number => {
                        return Cell {
                            text: number_text(number),
                            numeric: true,
                        };
                    }
                    NumberKind::Date => ExcelDateTimeType::DateTime,
                    NumberKind::Duration => ExcelDateTimeType::TimeDelta,
                };
                text(&date_time_text(&ExcelDateTime::new(
                    number,
                    kind,
                    self.date1904,
                )))
            }
        }
    }
}

/// Adds text to the value being read; past the longest row there is no point in keeping more
/// (the row is refused for its length).
fn append(cell: &mut Option<CellInProgress>, text: &str) {
    if let Some(cell) = cell.as_mut().filter(|cell| cell.in_value)
        && cell.value.len() <= MAX_RECORD_BYTES
    {
        cell.value.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_formats_that_show_dates() {
        assert_eq!(format_kind("yyyy-mm-dd"), NumberKind::Date);
        assert_eq!(format_kind("h:mm AM/PM"), NumberKind::Date);
        assert_eq!(format_kind("[$-409]d-mmm-yy;@"), NumberKind::Date);
        assert_eq!(format_kind("[h]:mm:ss"), NumberKind::Duration);
        assert_eq!(format_kind("[Red]0.00"), NumberKind::Number);
        assert_eq!(format_kind("0.00\" days\""), NumberKind::Number);
        assert_eq!(format_kind("\\d0"), NumberKind::Number);
        assert_eq!(format_kind("General"), NumberKind::Number);
        assert_eq!(format_kind("0;[Red]-0;\"zero\";dd"), NumberKind::Number);
        assert_eq!(format_kind("#,##0.00 [$€-407]"), NumberKind::Number);
    }

    #[test]
    fn cell_references_name_columns() {
        assert_eq!(column_of("A1"), Some(0));
        assert_eq!(column_of("b7"), Some(1));
        assert_eq!(column_of("AA10"), Some(26));
        assert_eq!(column_of("XFD1048576"), Some(16383));
        assert_eq!(column_of("12"), None);
        assert_eq!(column_of("ZZZZZZZZZZZZZZZZ1"), Some(u32::MAX));
    }

    #[test]
    fn ooxml_escapes() {
        assert_eq!(unescape_ooxml("a_x000D_b"), "a\rb");
        assert_eq!(unescape_ooxml("_x005F_x0041_"), "_x0041_");
        assert_eq!(unescape_ooxml("_xZZ_ and _x12"), "_xZZ_ and _x12");
    }

    #[test]
    fn relationship_targets() {
        assert_eq!(
            resolve("xl/", "worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(resolve("xl/", "/xl/sheet.xml"), "xl/sheet.xml");
        assert_eq!(resolve("xl/sub/", "../styles.xml"), "xl/styles.xml");
        assert_eq!(resolve("", "../../x.xml"), "x.xml");
    }
}
