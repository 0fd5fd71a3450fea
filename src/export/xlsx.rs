//! XLSX exports: one worksheet, written row by row in rust_xlsxwriter's constant-memory mode.
//! Every cell is text, so that phone numbers keep their `+` and leading zeros.

use rust_xlsxwriter::{Format, Workbook};

use super::{ExportError, ExportLine, cells, defuse, header, template_rows};

pub fn write(
    lines: impl Iterator<Item = Result<ExportLine, ExportError>>,
    fields: &[String],
    out: &mut std::fs::File,
) -> Result<(), ExportError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name("Contacts")?;
    for (column, name) in header(fields).iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, name, &bold)?;
    }
    for (row, line) in (1u32..).zip(lines) {
        let line = line?;
        for (column, cell) in cells(&line, fields).into_iter().enumerate() {
            if !cell.is_empty() {
                sheet.write_string(row, column as u16, defuse(cell))?;
            }
        }
    }
    let buffer = workbook.save_to_buffer()?;
    std::io::Write::write_all(out, &buffer)?;
    Ok(())
}

pub fn template() -> Result<Vec<u8>, ExportError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Contacts")?;
    for (r, row) in template_rows().iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, cell)?;
        }
    }
    Ok(workbook.save_to_buffer()?)
}
