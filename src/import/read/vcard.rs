//! vCard files (2.1, 3.0, 4.0; many contacts per file), read one contact at a time: the text up
//! to each `END:VCARD` is handed to calcard's parser, so the whole file is never in memory.
//!
//! Every contact becomes one row of fixed columns ([`HEADERS`]). Row numbers count a virtual
//! header row, as for a spreadsheet: contact N is row N + 1.

use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};

use calcard::vcard::{
    VCard, VCardEntry, VCardParameterName, VCardParameterValue, VCardProperty, VCardType,
    VCardValue,
};
use calcard::{Entry, Parser};

use super::sniff::sniff_encoding;
use super::text::{DecodingReader, SAMPLE_BYTES, read_sample};
use super::{Cell, MAX_CARD_BYTES, ReadError, SourceRow, Table, TextEncoding};
use crate::domain::contact::TimeZoneName;

/// The columns of a vCard file, in order.
pub const HEADERS: [&str; 12] = [
    "Phone",
    "Other Phones",
    "First Name",
    "Last Name",
    "Full Name",
    "Email",
    "Organization",
    "Categories",
    "Note",
    "Gender",
    "Time Zone",
    "Opted Out",
];

pub(super) fn open<R: Read + Seek + Send + 'static>(
    mut reader: R,
    encoding: Option<TextEncoding>,
) -> Result<Table, ReadError> {
    let encoding = match encoding {
        Some(encoding) => encoding,
        None => {
            reader.seek(SeekFrom::Start(0))?;
            sniff_encoding(&read_sample(&mut reader, SAMPLE_BYTES)?)
        }
    };
    reader.seek(SeekFrom::Start(0))?;
    Ok(Table {
        headers: HEADERS.iter().map(|header| (*header).to_owned()).collect(),
        has_header_row: true,
        rows: Box::new(CardRows {
            input: DecodingReader::new(reader, encoding),
            line: Vec::new(),
            card: 0,
            begin_read: false,
            done: false,
        }),
    })
}

struct CardRows<B> {
    input: B,
    line: Vec<u8>,
    /// The number of the last contact read, counting from 1.
    card: u64,
    /// The `BEGIN:VCARD` of the next contact was read already, ending an unterminated one.
    begin_read: bool,
    done: bool,
}

impl<B: BufRead> Iterator for CardRows<B> {
    type Item = Result<SourceRow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_card() {
                Ok(Some((card, Ok(text)))) => match card_cells(&text) {
                    Ok(Some(cells)) => {
                        return Some(Ok(SourceRow {
                            number: card + 1,
                            cells,
                        }));
                    }
                    Ok(None) => {}
                    Err(message) => return Some(Err(card_error(card, message))),
                },
                Ok(Some((card, Err(message)))) => return Some(Err(card_error(card, message))),
                Ok(None) => self.done = true,
                Err(error) => {
                    self.done = true;
                    return Some(Err(ReadError::Io(error)));
                }
            }
        }
        None
    }
}

fn card_error(card: u64, message: String) -> ReadError {
    ReadError::Vcard {
        row: card + 1,
        card,
        message,
    }
}

impl<B: BufRead> CardRows<B> {
    /// The text of the next contact, from `BEGIN:VCARD` to its `END:VCARD`, with its number; or
    /// why it cannot be had. Lines outside any contact are skipped.
    ///
    /// A vCard 2.1 contact may hold another after an empty `AGENT:` line, so BEGIN and END are
    /// counted there; any other `BEGIN:VCARD` inside a contact means its END was lost, and starts
    /// the next contact rather than swallowing the rest of the file.
    fn next_card(&mut self) -> io::Result<Option<(u64, Result<String, String>)>> {
        while !self.begin_read {
            match read_line(&mut self.input, &mut self.line, MAX_CARD_BYTES)? {
                None => return Ok(None),
                Some(_) => self.begin_read = is_marker(&self.line, "BEGIN:VCARD"),
            }
        }
        self.begin_read = false;
        self.card += 1;
        let mut text = String::from("BEGIN:VCARD\r\n");
        let mut depth = 1usize;
        let mut too_large = false;
        let mut after_agent = false;
        while depth > 0 {
            let Some(whole) = read_line(&mut self.input, &mut self.line, MAX_CARD_BYTES)? else {
                self.done = true;
                return Ok(Some((
                    self.card,
                    Err(
                        "the contact has no END:VCARD; the file may have been cut short".to_owned(),
                    ),
                )));
            };
            if is_marker(&self.line, "BEGIN:VCARD") {
                if !after_agent {
                    self.begin_read = true;
                    return Ok(Some((
                        self.card,
                        Err("the contact has no END:VCARD".to_owned()),
                    )));
                }
                depth += 1;
            } else if is_marker(&self.line, "END:VCARD") {
                depth -= 1;
            }
            after_agent = is_empty_agent(&self.line);
            if !whole || text.len() + self.line.len() + 2 > MAX_CARD_BYTES {
                too_large = true;
                text = String::new();
            }
            if !too_large {
                text.push_str(&String::from_utf8_lossy(&self.line));
                text.push_str("\r\n");
            }
        }
        if too_large {
            return Ok(Some((
                self.card,
                Err(format!("the contact is larger than {MAX_CARD_BYTES} bytes")),
            )));
        }
        Ok(Some((self.card, Ok(text))))
    }
}

/// `AGENT:` (perhaps grouped, perhaps with parameters) with the value on the following lines.
fn is_empty_agent(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let Some(name_and_params) = line.strip_suffix(':') else {
        return false;
    };
    let name = name_and_params.split(';').next().unwrap_or_default();
    let name = name.rsplit('.').next().unwrap_or_default();
    name.eq_ignore_ascii_case("AGENT") && !name_and_params.contains(':')
}

fn is_marker(line: &[u8], marker: &str) -> bool {
    let line = String::from_utf8_lossy(line);
    line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .eq_ignore_ascii_case(marker)
}

/// Reads one line, without its line ending, into `line`, keeping at most `limit` bytes of it.
/// `None` at the end of the input; otherwise whether the whole line fit.
fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut any = false;
    let mut whole = true;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(any.then_some(whole));
        }
        any = true;
        let newline = available.iter().position(|byte| *byte == b'\n');
        let chunk_end = newline.unwrap_or(available.len());
        let chunk = available.get(..chunk_end).unwrap_or_default();
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            whole = false;
        }
        line.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        let consumed = newline.map_or(chunk_end, |at| at + 1);
        input.consume(consumed);
        if newline.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(whole));
        }
    }
}

/// The row of one contact, `None` if it holds nothing, or why it cannot be read.
fn card_cells(text: &str) -> Result<Option<Vec<Cell>>, String> {
    // calcard is not ours: a panic on a malformed contact must not end the import.
    let entry = catch_unwind(AssertUnwindSafe(|| Parser::new(text).entry()))
        .map_err(|_| "the contact could not be parsed".to_owned())?;
    let card = match entry {
        Entry::VCard(card) => card,
        Entry::InvalidLine(line) => {
            return Err(format!("the contact could not be parsed near {line:?}"));
        }
        _ => return Err("the contact could not be parsed".to_owned()),
    };
    let contact = Contact::from_card(&card);
    let cells: Vec<Cell> = [
        contact.phone,
        contact.other_phones,
        contact.first_name,
        contact.last_name,
        contact.full_name,
        contact.email,
        contact.organization,
        contact.categories,
        contact.note,
        contact.gender,
        contact.time_zone,
        contact.opted_out,
    ]
    .into_iter()
    .map(|text| Cell {
        text: text.trim().to_owned(),
        numeric: false,
    })
    .collect();
    Ok(cells
        .iter()
        .any(|cell| !cell.text.is_empty())
        .then_some(cells))
}

/// The columns of one contact.
#[derive(Debug, Default, PartialEq)]
struct Contact {
    phone: String,
    other_phones: String,
    first_name: String,
    last_name: String,
    full_name: String,
    email: String,
    organization: String,
    categories: String,
    note: String,
    gender: String,
    time_zone: String,
    opted_out: String,
}

impl Contact {
    fn from_card(card: &VCard) -> Self {
        let mut contact = Contact::default();

        // The preferred number: a mobile one (the one to text), else the one marked preferred,
        // else the first. Ties go to the earlier.
        let phones: Vec<(String, bool, Option<u32>)> = card
            .properties(&VCardProperty::Tel)
            .filter_map(|entry| {
                let number = phone_number(entry)?;
                Some((number, is_mobile(card, entry), preference(entry)))
            })
            .collect();
        let rank = |(index, (_, _, pref)): &(usize, &(String, bool, Option<u32>))| {
            (pref.unwrap_or(u32::MAX), *index)
        };
        let chosen = phones
            .iter()
            .enumerate()
            .filter(|(_, (_, mobile, _))| *mobile)
            .min_by_key(rank)
            .or_else(|| {
                phones
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, _, pref))| pref.is_some())
                    .min_by_key(rank)
            })
            .or_else(|| phones.iter().enumerate().next())
            .map(|(index, _)| index);
        if let Some(chosen) = chosen {
            contact.phone = phones
                .get(chosen)
                .map(|(number, _, _)| number.clone())
                .unwrap_or_default();
            let mut others: Vec<&str> = Vec::new();
            for (index, (number, _, _)) in phones.iter().enumerate() {
                if index != chosen && *number != contact.phone && !others.contains(&number.as_str())
                {
                    others.push(number);
                }
            }
            contact.other_phones = others.join("; ");
        }

        if let Some(name) = card.property(&VCardProperty::N) {
            contact.last_name = name.values.first().and_then(value_text).unwrap_or_default();
            contact.first_name = name.values.get(1).and_then(value_text).unwrap_or_default();
        }
        contact.full_name = card
            .property(&VCardProperty::Fn)
            .map(|entry| joined(entry, " "))
            .unwrap_or_default();
        // A card without names carries its number as FN (Roster's exports do): not a name.
        let full_name_is_number = contact
            .full_name
            .trim_start()
            .starts_with(|c: char| c == '+' || c.is_ascii_digit());
        if contact.first_name.is_empty() && contact.last_name.is_empty() && !full_name_is_number {
            let full_name = contact.full_name.trim();
            match full_name.rsplit_once(' ') {
                Some((first, last)) => {
                    contact.first_name = first.trim().to_owned();
                    contact.last_name = last.trim().to_owned();
                }
                None => contact.first_name = full_name.to_owned(),
            }
        }

        contact.email = card
            .properties(&VCardProperty::Email)
            .enumerate()
            .filter_map(|(index, entry)| {
                let text = joined(entry, "");
                let address = strip_prefix_ignore_case(text.trim(), "mailto:")
                    .trim()
                    .to_owned();
                (!address.is_empty())
                    .then(|| (preference(entry).unwrap_or(u32::MAX), index, address))
            })
            .min()
            .map(|(_, _, address)| address)
            .unwrap_or_default();

        contact.organization = card
            .property(&VCardProperty::Org)
            .map(|entry| joined(entry, ", "))
            .unwrap_or_default();

        let mut categories: Vec<String> = Vec::new();
        for entry in card.properties(&VCardProperty::Categories) {
            for value in &entry.values {
                let items = match value {
                    VCardValue::Component(parts) => parts.clone(),
                    other => value_text(other).into_iter().collect(),
                };
                for item in items {
                    let item = item.trim();
                    if !item.is_empty() && !categories.iter().any(|known| known == item) {
                        categories.push(item.to_owned());
                    }
                }
            }
        }
        contact.categories = categories.join("; ");

        contact.note = card
            .property(&VCardProperty::Note)
            .map(|entry| joined(entry, " "))
            .unwrap_or_default();

        // Roster's own exports carry gender and opt-out state as X- properties; vCard 4.0's
        // GENDER is read when there is none.
        contact.gender = extension(card, "X-ROSTER-GENDER").unwrap_or_else(|| {
            card.property(&VCardProperty::Gender)
                .and_then(|entry| entry.values.first())
                .and_then(value_text)
                .map(|sex| match sex.split_whitespace().next().unwrap_or("") {
                    "M" | "m" => "male".to_owned(),
                    "F" | "f" => "female".to_owned(),
                    "O" | "o" => "other".to_owned(),
                    _ => String::new(),
                })
                .unwrap_or_default()
        });
        // TZ may also be a UTC offset (`-05:00`), which names no zone: only a name the time zone
        // database knows is taken, so that such a card is imported rather than rejected for it.
        contact.time_zone = card
            .property(&VCardProperty::Tz)
            .map(|entry| joined(entry, ""))
            .filter(|text| TimeZoneName::parse(text).is_ok())
            .unwrap_or_default();
        contact.opted_out = extension(card, "X-ROSTER-OPTED-OUT").unwrap_or_default();
        contact
    }
}

/// The text of an `X-` property, whatever its case.
fn extension(card: &VCard, name: &str) -> Option<String> {
    card.entries.iter().find_map(|entry| match &entry.name {
        VCardProperty::Other(found) if found.eq_ignore_ascii_case(name) => {
            Some(joined(entry, " ")).filter(|text| !text.trim().is_empty())
        }
        _ => None,
    })
}

/// The text of a value; parts of a structured value joined by spaces.
fn value_text(value: &VCardValue) -> Option<String> {
    let text = match value {
        VCardValue::Text(text) => text.clone(),
        VCardValue::Component(parts) => parts
            .iter()
            .map(|part| part.trim())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        VCardValue::Integer(number) => number.to_string(),
        VCardValue::Float(number) => number.to_string(),
        VCardValue::Boolean(value) => value.to_string(),
        other => other.as_text()?.to_owned(),
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn joined(entry: &VCardEntry, separator: &str) -> String {
    entry
        .values
        .iter()
        .filter_map(value_text)
        .collect::<Vec<_>>()
        .join(separator)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(start) if start.eq_ignore_ascii_case(prefix) => {
            text.get(prefix.len()..).unwrap_or(text)
        }
        _ => text,
    }
}

/// A TEL's number: `tel:` URIs (vCard 4.0) lose the scheme and their parameters (`;ext=`).
fn phone_number(entry: &VCardEntry) -> Option<String> {
    let text = joined(entry, "");
    let text = text.trim();
    let number = if text.len() >= 4
        && text
            .get(..4)
            .is_some_and(|s| s.eq_ignore_ascii_case("tel:"))
    {
        let uri = text.get(4..).unwrap_or_default();
        uri.split(';').next().unwrap_or_default()
    } else {
        text
    };
    let number = number.trim();
    (!number.is_empty()).then(|| number.to_owned())
}

/// TYPE=cell (or the "mobile"/"iPhone" types phones write), or an iOS label saying so on the
/// property's group (`item1.TEL` with `item1.X-ABLabel:_$!<Mobile>!$_`).
fn is_mobile(card: &VCard, entry: &VCardEntry) -> bool {
    let mobile_word = |text: &str| {
        let text = text.to_ascii_lowercase();
        ["cell", "mobile", "iphone"]
            .iter()
            .any(|word| text.contains(word))
    };
    let typed = entry
        .parameters(&VCardParameterName::Type)
        .any(|value| match value {
            VCardParameterValue::Type(VCardType::Cell) => true,
            VCardParameterValue::Text(text) => mobile_word(text),
            _ => false,
        });
    typed
        || entry.group.as_deref().is_some_and(|group| {
            card.entries.iter().any(|other| {
                matches!(&other.name, VCardProperty::Other(name) if name.eq_ignore_ascii_case("X-ABLABEL"))
                    && other
                        .group
                        .as_deref()
                        .is_some_and(|other_group| other_group.eq_ignore_ascii_case(group))
                    && other
                        .values
                        .iter()
                        .filter_map(value_text)
                        .any(|label| mobile_word(&label))
            })
        })
}

/// PREF=n (4.0: lower is more preferred), a bare PREF (2.1) or TYPE=pref (3.0) as 1.
fn preference(entry: &VCardEntry) -> Option<u32> {
    entry
        .params
        .iter()
        .filter_map(|param| match (&param.name, &param.value) {
            (VCardParameterName::Pref, VCardParameterValue::Integer(rank)) => Some(*rank),
            (VCardParameterName::Pref, _) => Some(1),
            (VCardParameterName::Type, VCardParameterValue::Text(text))
                if text.eq_ignore_ascii_case("pref") =>
            {
                Some(1)
            }
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn rows(text: &str) -> Vec<Result<SourceRow, ReadError>> {
        open(
            Cursor::new(text.as_bytes().to_vec()),
            Some(TextEncoding::Utf8),
        )
        .unwrap()
        .rows
        .collect()
    }

    fn columns(row: &SourceRow) -> Vec<(&'static str, &str)> {
        HEADERS
            .iter()
            .zip(&row.cells)
            .filter(|(_, cell)| !cell.text.is_empty())
            .map(|(header, cell)| (*header, cell.text.as_str()))
            .collect()
    }

    #[test]
    fn vcard_3_from_an_iphone() {
        let text = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n\
            N:Lovelace;Ada;;;\r\nFN:Ada Lovelace\r\nORG:Analytical Engines;Research\r\n\
            EMAIL;type=INTERNET;type=HOME:ada@home.example\r\n\
            EMAIL;type=INTERNET;type=WORK;type=pref:ada@work.example\r\n\
            TEL;type=HOME;type=VOICE:+44 20 7946 0000\r\n\
            item1.TEL:+44 7700 900123\r\nitem1.X-ABLabel:_$!<Mobile>!$_\r\n\
            TEL;type=WORK;type=pref:+44 20 7946 0958\r\n\
            CATEGORIES:VIP,Customers\r\nNOTE:Met at the\\, conference\\nTwice\r\n\
            END:VCARD\r\n";
        let rows = rows(text);
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row.number, 2);
        assert_eq!(
            columns(row),
            [
                ("Phone", "+44 7700 900123"),
                ("Other Phones", "+44 20 7946 0000; +44 20 7946 0958"),
                ("First Name", "Ada"),
                ("Last Name", "Lovelace"),
                ("Full Name", "Ada Lovelace"),
                ("Email", "ada@work.example"),
                ("Organization", "Analytical Engines, Research"),
                ("Categories", "VIP; Customers"),
                ("Note", "Met at the, conference\nTwice"),
            ]
        );
    }

    #[test]
    fn vcard_3_type_cell_and_several_contacts() {
        let text = "BEGIN:VCARD\nVERSION:3.0\nFN:Grace Hopper\nTEL;TYPE=WORK:+1 555 0100\n\
            TEL;TYPE=CELL:+1 555 0199\nEND:VCARD\n\n\
            BEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n\
            begin:vcard\nversion:3.0\nfn:Cher\ntel:+33 6 12 34 56 78\nend:vcard\n";
        let rows = rows(text);
        assert_eq!(rows.len(), 2);
        let grace = rows[0].as_ref().unwrap();
        assert_eq!(
            columns(grace),
            [
                ("Phone", "+1 555 0199"),
                ("Other Phones", "+1 555 0100"),
                ("First Name", "Grace"),
                ("Last Name", "Hopper"),
                ("Full Name", "Grace Hopper"),
            ]
        );
        // The empty second contact is skipped but keeps its number.
        let cher = rows[1].as_ref().unwrap();
        assert_eq!(cher.number, 4);
        assert_eq!(
            columns(cher),
            [
                ("Phone", "+33 6 12 34 56 78"),
                ("First Name", "Cher"),
                ("Full Name", "Cher")
            ]
        );
    }

    #[test]
    fn vcard_4_tel_uris_and_pref() {
        let text = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Alan Turing\r\nN:Turing;Alan;Mathison;;\r\n\
            TEL;VALUE=uri;TYPE=\"voice,home\";PREF=2:tel:+1-555-555-0101\r\n\
            TEL;VALUE=uri;TYPE=cell:tel:+1-555-555-0102;ext=7\r\n\
            EMAIL;PREF=2:a@one.example\r\nEMAIL;PREF=1:a@two.example\r\nEND:VCARD\r\n";
        let rows = rows(text);
        let row = rows[0].as_ref().unwrap();
        assert_eq!(
            columns(row),
            [
                ("Phone", "+1-555-555-0102"),
                ("Other Phones", "+1-555-555-0101"),
                ("First Name", "Alan"),
                ("Last Name", "Turing"),
                ("Full Name", "Alan Turing"),
                ("Email", "a@two.example"),
            ]
        );
    }

    #[test]
    fn vcard_4_pref_without_a_mobile() {
        let text = "BEGIN:VCARD\nVERSION:4.0\nFN:X\nTEL;PREF=3:111\nTEL;PREF=1:222\nTEL:333\n\
            END:VCARD\n";
        let rows = rows(text);
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row.cells[0].text, "222");
        assert_eq!(row.cells[1].text, "111; 333");
    }

    #[test]
    fn vcard_2_1_quoted_printable() {
        let text = "BEGIN:VCARD\r\nVERSION:2.1\r\n\
            N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r\n\
            FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen M=C3=BCller\r\n\
            TEL;HOME;VOICE:+49 30 1234567\r\nTEL;CELL;PREF:+49 151 12345678\r\n\
            NOTE;ENCODING=QUOTED-PRINTABLE:first line=0D=0Asecond=\r\n line\r\nEND:VCARD\r\n";
        let rows = rows(text);
        let row = rows[0].as_ref().unwrap();
        assert_eq!(
            columns(row),
            [
                ("Phone", "+49 151 12345678"),
                ("Other Phones", "+49 30 1234567"),
                ("First Name", "Jürgen"),
                ("Last Name", "Müller"),
                ("Full Name", "Jürgen Müller"),
                ("Note", "first line\r\nsecond line"),
            ]
        );
    }

    #[test]
    fn a_missing_end_is_an_error_for_that_contact() {
        let text = "BEGIN:VCARD\nFN:A\nEND:VCARD\nBEGIN:VCARD\nFN:B\n";
        let rows = rows(text);
        assert_eq!(rows.len(), 2);
        assert!(matches!(
            rows[1],
            Err(ReadError::Vcard {
                row: 3,
                card: 2,
                ..
            })
        ));
    }

    #[test]
    fn an_oversized_contact_is_an_error_and_reading_goes_on() {
        let photo = "A".repeat(MAX_CARD_BYTES);
        let text = format!(
            "BEGIN:VCARD\nFN:Big\nPHOTO;ENCODING=b:{photo}\nEND:VCARD\n\
             BEGIN:VCARD\nFN:Small One\nEND:VCARD\n"
        );
        let rows = rows(&text);
        assert_eq!(rows.len(), 2);
        assert!(matches!(rows[0], Err(ReadError::Vcard { row: 2, .. })));
        let small = rows[1].as_ref().unwrap();
        assert_eq!((small.number, small.cells[2].text.as_str()), (3, "Small"));
    }

    #[test]
    fn a_lost_end_costs_one_contact_not_the_rest() {
        let text = "BEGIN:VCARD\nFN:Broken One\nBEGIN:VCARD\nFN:Good One\nEND:VCARD\n\
            BEGIN:VCARD\nFN:Next One\nEND:VCARD\n";
        let rows = rows(text);
        assert_eq!(rows.len(), 3);
        assert!(matches!(
            rows[0],
            Err(ReadError::Vcard {
                row: 2,
                card: 1,
                ..
            })
        ));
        assert_eq!(rows[1].as_ref().unwrap().number, 3);
        assert_eq!(rows[2].as_ref().unwrap().cells[4].text, "Next One");
    }

    #[test]
    fn an_agent_card_inside_a_card_does_not_split_it() {
        let text = "BEGIN:VCARD\nVERSION:2.1\nFN:Boss Person\nitem1.AGENT;X=y:\nBEGIN:VCARD\n\
            FN:Agent\nEND:VCARD\nTEL:123\nEND:VCARD\nBEGIN:VCARD\nFN:After\nEND:VCARD\n";
        let rows = rows(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].as_ref().unwrap().cells[4].text, "Boss Person");
        assert_eq!(rows[1].as_ref().unwrap().number, 3);
    }

    #[test]
    fn time_zones_are_read_when_they_name_a_zone() {
        let text = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ada\r\nTEL:+33612345678\r\n\
            TZ:Europe/Paris\r\nEND:VCARD\r\n\
            BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bob\r\nTEL:+14155550100\r\n\
            TZ;VALUE=utc-offset:-0500\r\nEND:VCARD\r\n";
        let rows = rows(text);
        let zone = |index: usize| {
            let row = rows[index].as_ref().unwrap();
            columns(row)
                .into_iter()
                .find(|(header, _)| *header == "Time Zone")
                .map(|(_, text)| text.to_owned())
        };
        assert_eq!(zone(0).as_deref(), Some("Europe/Paris"));
        assert_eq!(zone(1), None);
    }

    #[test]
    fn lines_are_bounded() {
        let mut line = Vec::new();
        let mut input = Cursor::new(b"abcdef\r\ngh".to_vec());
        assert_eq!(read_line(&mut input, &mut line, 4).unwrap(), Some(false));
        assert_eq!(line, b"abcd");
        assert_eq!(read_line(&mut input, &mut line, 4).unwrap(), Some(true));
        assert_eq!(line, b"gh");
        assert_eq!(read_line(&mut input, &mut line, 4).unwrap(), None);
    }
}
