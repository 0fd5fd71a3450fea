//! CSV exports: UTF-8, comma-separated, one header row.

use super::{ExportError, ExportLine, cells, defuse, header, template_rows};

pub fn write(
    lines: impl Iterator<Item = Result<ExportLine, ExportError>>,
    fields: &[String],
    out: &mut std::fs::File,
) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(out));
    writer.write_record(header(fields)).map_err(csv_error)?;
    for line in lines {
        let line = line?;
        writer
            .write_record(cells(&line, fields).into_iter().map(defuse))
            .map_err(csv_error)?;
    }
    writer.flush()?;
    Ok(())
}

fn csv_error(error: csv::Error) -> ExportError {
    ExportError::Io(std::io::Error::other(error))
}

pub fn template() -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in template_rows() {
        // Writing to memory cannot fail.
        let _ = writer.write_record(row);
    }
    writer.into_inner().unwrap_or_default()
}
