//! vCard 4.0 exports: one card per contact, with its time zone as TZ, its groups as CATEGORIES
//! and its opt-out state and custom fields as `X-ROSTER-` properties.

use std::io::Write;

use super::{ExportError, ExportLine};

pub fn write(
    lines: impl Iterator<Item = Result<ExportLine, ExportError>>,
    out: &mut std::fs::File,
) -> Result<(), ExportError> {
    let mut out = std::io::BufWriter::new(out);
    for line in lines {
        out.write_all(card(&line?).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Escapes a text value (RFC 6350 §3.4).
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ',' => escaped.push_str("\\,"),
            ';' => escaped.push_str("\\;"),
            '\n' => escaped.push_str("\\n"),
            '\r' => {}
            other => escaped.push(other),
        }
    }
    escaped
}

fn card(line: &ExportLine) -> String {
    let first = line.first_name.as_deref().unwrap_or("");
    let last = line.last_name.as_deref().unwrap_or("");
    let full = [first, last]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let full = if full.is_empty() {
        line.phone.as_str()
    } else {
        &full
    };
    let mut card = String::from("BEGIN:VCARD\r\nVERSION:4.0\r\n");
    card.push_str(&format!("FN:{}\r\n", escape(full)));
    card.push_str(&format!("N:{};{};;;\r\n", escape(last), escape(first)));
    card.push_str(&format!("TEL;VALUE=uri;TYPE=cell:tel:{}\r\n", line.phone));
    if let Some(email) = &line.email {
        card.push_str(&format!("EMAIL:{}\r\n", escape(email)));
    }
    if let Some(zone) = &line.time_zone {
        card.push_str(&format!("TZ:{}\r\n", escape(zone)));
    }
    if !line.groups.is_empty() {
        let groups: Vec<String> = line.groups.iter().map(|g| escape(g)).collect();
        card.push_str(&format!("CATEGORIES:{}\r\n", groups.join(",")));
    }
    if let Some(gender) = &line.gender {
        card.push_str(&format!("X-ROSTER-GENDER:{}\r\n", escape(gender)));
    }
    if line.opted_out {
        card.push_str("X-ROSTER-OPTED-OUT:true\r\n");
    }
    for name in line.fields.keys() {
        card.push_str(&format!(
            "X-ROSTER-FIELD;NAME={}:{}\r\n",
            name,
            escape(&line.field_text(name))
        ));
    }
    card.push_str("END:VCARD\r\n");
    card
}
