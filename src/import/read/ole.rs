//! A sanity check of an XLS file before calamine reads it.
//!
//! calamine 0.38 trusts an XLS file's numbers in ways that a few corrupted bytes turn into
//! allocations of gigabytes, which abort the process (no `catch_unwind` can stop that), found by
//! mutating small files:
//! - it follows the compound file's sector chains without checking for loops;
//! - it reserves room for the cells a sheet's DIMENSIONS record claims, up to 2^32 rows;
//! - it lays a sheet out as a dense grid spanning its outermost cells, up to 65536 × 65536.
//!
//! So before calamine sees the file: no sector chain may loop and the allocation table may be no
//! larger than the file (then every chain calamine follows ends within the file's size), and in
//! the workbook stream no dimensions or cell may lie outside the BIFF8 grid of 65536 rows × 256
//! columns (then no grid is larger than Excel's own).
//!
//! Even within those bounds calamine holds a lot: the file's workbook stream, every cell of every
//! sheet as a list, each sheet again as a dense grid over its used rectangle, and every shared
//! string as a `String` of its own (24 bytes for an empty one written in 3). So the file's size,
//! its cells (listed and in their rectangles, over all sheets) and its shared string table are
//! held to the caps of [`Limits`] first.

use std::io::{Read, Seek, SeekFrom};

use super::ReadError;
use super::limits::{Cap, Limits};

const MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
/// Sector numbers from here up are markers, not sectors (DIFSECT, FATSECT, ENDOFCHAIN, FREESECT).
const FIRST_MARKER: u32 = 0xFFFF_FFFC;
/// Sector numbers from here up end a DIFAT chain.
const FIRST_RESERVED: u32 = 0xFFFF_FFFA;

pub(super) fn is_compound_file(start: &[u8]) -> bool {
    start.starts_with(MAGIC)
}

/// `Err` says what is wrong, for the operator.
pub(super) fn check<R: Read + Seek>(reader: &mut R, limits: &Limits) -> Result<(), ReadError> {
    let len = reader.seek(SeekFrom::End(0))?;
    if len > limits.xls_file_bytes {
        return Err(Cap::XlsFileBytes.exceeded(limits));
    }
    reader.seek(SeekFrom::Start(0))?;
    check_structure(reader, len, limits).map_err(|what| match what {
        Problem::Damaged(what) => {
            ReadError::Spreadsheet(format!("the XLS file is damaged ({what})"))
        }
        Problem::Over(cap) => cap.exceeded(limits),
    })
}

/// What is wrong with a compound file.
enum Problem {
    Damaged(String),
    Over(Cap),
}

impl From<String> for Problem {
    fn from(what: String) -> Self {
        Problem::Damaged(what)
    }
}

fn check_structure<R: Read + Seek>(
    reader: &mut R,
    len: u64,
    limits: &Limits,
) -> Result<(), Problem> {
    let damaged = |what: &str| Problem::Damaged(what.to_owned());
    let mut header = [0u8; 512];
    reader
        .read_exact(&mut header)
        .map_err(|_| damaged("too short"))?;
    if !header.starts_with(MAGIC) {
        return Err(damaged("not a compound file"));
    }
    let sector_size: u64 = match header.get(30..32) {
        Some([0x09, 0x00]) => 512,
        Some([0x0C, 0x00]) => 4096,
        _ => return Err(damaged("sector size")),
    };
    let max_id = len / sector_size;
    let mut sectors = Sectors {
        reader,
        size: sector_size,
        max_id,
    };

    // The sectors holding the allocation table: 109 listed in the header, more in a DIFAT chain
    // whose last entry per sector points to the next.
    let mut table_sectors: Vec<u32> = u32s(header.get(76..).unwrap_or_default())
        .filter(|id| *id < FIRST_MARKER)
        .collect();
    let mut difat = u32_at(&header, 68).unwrap_or(u32::MAX);
    let mut steps = 0u64;
    while difat < FIRST_RESERVED {
        steps += 1;
        if steps > max_id + 1 {
            return Err(damaged("sector list loops"));
        }
        let mut entries: Vec<u32> = u32s(&sectors.read(difat)?).collect();
        difat = entries.pop().unwrap_or(u32::MAX);
        table_sectors.extend(entries.into_iter().filter(|id| *id < FIRST_MARKER));
        if table_sectors.len() as u64 > max_id + 1 {
            return Err(damaged("allocation table larger than the file"));
        }
    }
    if table_sectors.len() as u64 > max_id + 1 {
        return Err(damaged("allocation table larger than the file"));
    }
    let mut table: Vec<u32> = Vec::new();
    for id in table_sectors {
        table.extend(u32s(&sectors.read(id)?));
    }
    if has_loop(&table) {
        return Err(damaged("sector chain loops"));
    }
    let Some(stream) = workbook_stream(&header, &table, &mut sectors)? else {
        // No workbook: calamine says so.
        return Ok(());
    };
    check_workbook(&stream, limits)
}

/// The BIFF8 grid: a sheet holds at most this many rows and columns.
const MAX_ROWS: u64 = 65_536;
const MAX_COLUMNS: u64 = 256;

/// The stream calamine reads, "Workbook" (or "Book" from Excel 5), as it reads it.
fn workbook_stream<R: Read + Seek>(
    header: &[u8],
    table: &[u32],
    sectors: &mut Sectors<'_, R>,
) -> Result<Option<Vec<u8>>, String> {
    let directory = sectors.chain(u32_at(header, 48).unwrap_or(u32::MAX), table, usize::MAX)?;
    let entries: Vec<Entry> = directory
        .chunks_exact(128)
        .map(|bytes| Entry::parse(bytes, sectors.size))
        .collect();
    let Some(stream) = ["Workbook", "Book"].iter().find_map(|wanted| {
        entries
            .iter()
            .find(|entry| entry.name.eq_ignore_ascii_case(wanted))
    }) else {
        return Ok(None);
    };
    if stream.len >= 4096 {
        return sectors.chain(stream.start, table, stream.len).map(Some);
    }
    // Small streams live in 64-byte sectors inside the root entry's "mini stream".
    let mini_table_sectors = usize::try_from(u32_at(header, 64).unwrap_or(0)).unwrap_or(0);
    if mini_table_sectors == 0 {
        return Ok(Some(Vec::new()));
    }
    let Some(root) = entries.first() else {
        return Ok(None);
    };
    let mini_stream = sectors.chain(root.start, table, root.len)?;
    let mini_table: Vec<u32> = u32s(&sectors.chain(
        u32_at(header, 60).unwrap_or(u32::MAX),
        table,
        mini_table_sectors.saturating_mul(sectors.size as usize),
    )?)
    .collect();
    let mut bytes = Vec::new();
    let mut id = stream.start;
    while id < FIRST_MARKER && bytes.len() < stream.len {
        let start = (id as usize).saturating_mul(64);
        let Some(sector) = mini_stream.get(start..start.saturating_add(64).min(mini_stream.len()))
        else {
            break;
        };
        bytes.extend_from_slice(sector);
        id = mini_table.get(id as usize).copied().unwrap_or(u32::MAX);
    }
    bytes.truncate(stream.len);
    Ok(Some(bytes))
}

struct Entry {
    name: String,
    start: u32,
    len: usize,
}

impl Entry {
    fn parse(bytes: &[u8], sector_size: u64) -> Self {
        let units: Vec<u16> = bytes
            .get(..64)
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|pair| pair.try_into().ok().map(u16::from_le_bytes))
            .take_while(|unit| *unit != 0)
            .collect();
        let len = if sector_size == 512 {
            u64::from(u32_at(bytes, 120).unwrap_or(0))
        } else {
            bytes
                .get(120..128)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        Self {
            name: String::from_utf16_lossy(&units),
            start: u32_at(bytes, 116).unwrap_or(u32::MAX),
            len: usize::try_from(len).unwrap_or(usize::MAX),
        }
    }
}

/// Checks the dimensions and cell positions of every sheet in a BIFF workbook stream, and counts
/// what calamine will hold of it.
fn check_workbook(stream: &[u8], limits: &Limits) -> Result<(), Problem> {
    let mut rest = stream;
    let u16_in = |bytes: &[u8], at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(u16::from_le_bytes(b))
    };
    let mut count = CellCount::default();
    let mut sheet = SheetCells::default();
    let mut depth = 0usize;
    // The shared string table and the CONTINUE records that carry it on.
    let mut strings = 0u64;
    let mut in_strings = false;
    while let (Some(kind), Some(len)) = (u16_in(rest, 0), u16_in(rest, 2)) {
        let len = usize::from(len);
        let Some(data) = rest.get(4..4 + len) else {
            // calamine stops here with an error of its own.
            break;
        };
        rest = rest.get(4 + len..).unwrap_or_default();
        let u16_at = |at: usize| u16_in(data, at).map(u64::from);
        let u32_at = |at: usize| u32_at(data, at).map(u64::from);
        in_strings = kind == 0x00FC || (in_strings && kind == 0x003C);
        if in_strings {
            strings += len as u64;
            if strings > limits.xls_string_bytes {
                return Err(Problem::Over(Cap::XlsStringBytes));
            }
        }
        match kind {
            // BOF: a sheet (or, nested in one, a chart) begins.
            0x0809 => {
                depth += 1;
                if depth == 1 {
                    count.add_sheet(&std::mem::take(&mut sheet), limits)?;
                }
            }
            // EOF: it ends.
            0x000A => {
                if depth == 1 {
                    count.add_sheet(&std::mem::take(&mut sheet), limits)?;
                }
                depth = depth.saturating_sub(1);
            }
            // DIMENSIONS: first row, last row + 1, first column, last column + 1.
            0x0200 => {
                let last = match len {
                    10 => u16_at(2).zip(u16_at(6)),
                    14 | 16 => u32_at(4).zip(u16_at(10)),
                    _ => None,
                };
                if let Some((rows, columns)) = last {
                    if rows > MAX_ROWS || columns > MAX_COLUMNS {
                        return Err(
                            format!("a sheet claims {rows} rows and {columns} columns").into()
                        );
                    }
                    // calamine reserves room for this many cells, whatever the sheet holds.
                    sheet.declared = sheet.declared.max(rows * columns);
                }
            }
            // Cell records: row, then column. MULRK and MULBLANK end with their last column.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x00BD | 0x0006 | 0x0201
            | 0x00BE => {
                let row = u16_at(0).unwrap_or(0);
                let first = u16_at(2).unwrap_or(0);
                let mut column = first;
                if matches!(kind, 0x00BD | 0x00BE) {
                    column = column.max(len.checked_sub(2).and_then(u16_at).unwrap_or(0));
                }
                if row >= MAX_ROWS || column >= MAX_COLUMNS {
                    return Err(format!("a cell at row {}, column {}", row + 1, column + 1).into());
                }
                // Blank cells (BLANK, MULBLANK) are not loaded.
                if !matches!(kind, 0x0201 | 0x00BE) {
                    let cells = if kind == 0x00BD {
                        column - first + 1
                    } else {
                        1
                    };
                    sheet.values.add(row, first, column);
                    if kind == 0x0006 {
                        sheet.formulas.add(row, first, column);
                    }
                    count.listed += cells;
                    if count.listed > limits.xls_cells {
                        return Err(Problem::Over(Cap::XlsCells));
                    }
                }
            }
            _ => {}
        }
    }
    // A sheet the stream does not close.
    count.add_sheet(&sheet, limits)
}

/// The cells of a workbook so far: as listed, and in their sheets' rectangles.
#[derive(Default)]
struct CellCount {
    listed: u64,
    laid_out: u64,
}

impl CellCount {
    fn add_sheet(&mut self, sheet: &SheetCells, limits: &Limits) -> Result<(), Problem> {
        self.laid_out += sheet
            .declared
            .max(sheet.values.area())
            .saturating_add(sheet.formulas.area());
        if self.laid_out > limits.xls_cells {
            return Err(Problem::Over(Cap::XlsCells));
        }
        Ok(())
    }
}

/// One sheet's cells: the rectangle of its values, of its formulas, and what it declares.
#[derive(Default)]
struct SheetCells {
    values: Rectangle,
    formulas: Rectangle,
    declared: u64,
}

/// The smallest rectangle around some cells.
#[derive(Default)]
struct Rectangle {
    /// First row, last row, first column, last column; `None` until a cell is added.
    bounds: Option<(u64, u64, u64, u64)>,
}

impl Rectangle {
    fn add(&mut self, row: u64, first: u64, last: u64) {
        self.bounds = Some(match self.bounds {
            None => (row, row, first, last),
            Some((top, bottom, left, right)) => (
                top.min(row),
                bottom.max(row),
                left.min(first),
                right.max(last),
            ),
        });
    }

    fn area(&self) -> u64 {
        self.bounds.map_or(0, |(top, bottom, left, right)| {
            (bottom - top + 1) * (right - left + 1)
        })
    }
}

struct Sectors<'r, R> {
    reader: &'r mut R,
    size: u64,
    max_id: u64,
}

impl<R: Read + Seek> Sectors<'_, R> {
    /// The bytes of the chain starting at `id`, at most `len`. Only called once the table is
    /// known to have no loops, so the chain ends.
    fn chain(&mut self, mut id: u32, table: &[u32], len: usize) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        while id < FIRST_MARKER && bytes.len() < len {
            bytes.extend(self.read(id)?);
            id = table.get(id as usize).copied().unwrap_or(u32::MAX);
        }
        bytes.truncate(len);
        Ok(bytes)
    }

    /// A sector's bytes; short at the end of the file, as calamine allows.
    fn read(&mut self, id: u32) -> Result<Vec<u8>, String> {
        if u64::from(id) > self.max_id {
            return Err("the XLS file is damaged (sector beyond its end)".to_owned());
        }
        let start = (u64::from(id) + 1) * self.size;
        self.reader
            .seek(SeekFrom::Start(start))
            .map_err(|error| error.to_string())?;
        let mut sector = Vec::new();
        (&mut *self.reader)
            .take(self.size)
            .read_to_end(&mut sector)
            .map_err(|error| error.to_string())?;
        Ok(sector)
    }
}

/// Whether following `next = table[id]` from any sector ever comes back to a sector.
fn has_loop(table: &[u32]) -> bool {
    // 0: not visited, 1: on the current path, 2: known to end.
    let mut state = vec![0u8; table.len()];
    let mut path = Vec::new();
    for start in 0..table.len() {
        let mut at = start;
        loop {
            match state.get(at) {
                Some(0) => {
                    if let Some(slot) = state.get_mut(at) {
                        *slot = 1;
                    }
                    path.push(at);
                    match table.get(at) {
                        Some(&next) if next < FIRST_MARKER => at = next as usize,
                        _ => break,
                    }
                }
                Some(1) => return true,
                // Known to end, or outside the table (calamine stops with an error there).
                _ => break,
            }
        }
        for done in path.drain(..) {
            if let Some(slot) = state.get_mut(done) {
                *slot = 2;
            }
        }
    }
    false
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn u32s(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .filter_map(|chunk| chunk.try_into().ok().map(u32::from_le_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_at_and_past_the_grid() {
        let dimensions = |rows: u32, columns: u16| {
            let mut record = vec![0x00, 0x02, 14, 0];
            record.extend_from_slice(&0u32.to_le_bytes());
            record.extend_from_slice(&rows.to_le_bytes());
            record.extend_from_slice(&0u16.to_le_bytes());
            record.extend_from_slice(&columns.to_le_bytes());
            record.extend_from_slice(&0u16.to_le_bytes());
            record
        };
        let unbounded = Limits {
            xls_cells: u64::MAX,
            ..Limits::default()
        };
        let damaged = |result: Result<(), Problem>| matches!(result, Err(Problem::Damaged(_)));
        assert!(check_workbook(&dimensions(65_536, 256), &unbounded).is_ok());
        assert!(damaged(check_workbook(
            &dimensions(65_537, 256),
            &unbounded
        )));
        assert!(damaged(check_workbook(
            &dimensions(65_536, 257),
            &unbounded
        )));
        // Cut short: left to calamine.
        assert!(check_workbook(&dimensions(u32::MAX, 256)[..10], &unbounded).is_ok());
    }

    #[test]
    fn loops_are_found() {
        const END: u32 = 0xFFFF_FFFE;
        assert!(!has_loop(&[END, 2, 3, END, 0xFFFF_FFFF]));
        assert!(!has_loop(&[1, 2, 99]));
        assert!(has_loop(&[1, 2, 0]));
        assert!(has_loop(&[END, 1]));
        assert!(has_loop(&[END, 3, END, 4, 3]));
    }

    fn record(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut bytes = kind.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(data.len() as u16).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    /// A sheet with a NUMBER cell at each position.
    fn sheet(cells: &[(u16, u16)]) -> Vec<u8> {
        let mut stream = record(0x0809, &[0; 16]);
        for (row, column) in cells {
            let mut data = row.to_le_bytes().to_vec();
            data.extend_from_slice(&column.to_le_bytes());
            data.extend_from_slice(&[0; 10]);
            stream.extend(record(0x0203, &data));
        }
        stream.extend(record(0x000A, &[]));
        stream
    }

    fn over(result: Result<(), Problem>) -> Option<Cap> {
        match result {
            Err(Problem::Over(cap)) => Some(cap),
            _ => None,
        }
    }

    #[test]
    fn cells_at_and_past_the_cap() {
        let limits = Limits {
            xls_cells: 100,
            ..Limits::default()
        };
        // Two cells far apart: calamine would lay out the 10 × 10 rectangle between them.
        assert!(check_workbook(&sheet(&[(0, 0), (9, 9)]), &limits).is_ok());
        assert_eq!(
            over(check_workbook(&sheet(&[(0, 0), (10, 9)]), &limits)),
            Some(Cap::XlsCells)
        );
        // Summed over sheets.
        let two = [sheet(&[(0, 0), (9, 4)]), sheet(&[(0, 0), (9, 4)])].concat();
        assert!(check_workbook(&two, &limits).is_ok());
        let three = [two.clone(), sheet(&[(0, 0)])].concat();
        assert_eq!(over(check_workbook(&three, &limits)), Some(Cap::XlsCells));
        // The same cell over and over is listed each time.
        let repeated: Vec<(u16, u16)> = std::iter::repeat_n((0, 0), 101).collect();
        assert_eq!(
            over(check_workbook(&sheet(&repeated), &limits)),
            Some(Cap::XlsCells)
        );
    }

    #[test]
    fn shared_strings_at_and_past_the_cap() {
        let limits = Limits {
            xls_string_bytes: 100,
            ..Limits::default()
        };
        let table = |first: usize, more: usize| {
            let mut stream = record(0x00FC, &vec![0; first]);
            stream.extend(record(0x003C, &vec![0; more]));
            stream
        };
        assert!(check_workbook(&table(60, 40), &limits).is_ok());
        assert_eq!(
            over(check_workbook(&table(60, 41), &limits)),
            Some(Cap::XlsStringBytes)
        );
    }
}
