//! One row of a file made into a contact, or rejected with the reason.

use serde_json::{Map, Value};

use super::mapping::{ColumnTarget, Mapping};
use super::read::SourceRow;
use crate::domain::contact::{CustomFields, Email, Gender, PersonName, TimeZoneName};
use crate::domain::group::GroupName;
use crate::domain::msisdn::{Msisdn, RegionCode};
use crate::domain::text::refuse_nul;
use crate::store::{ImportRow, RejectedRow};

/// What became of one row.
#[derive(Debug)]
pub enum RowOutcome {
    Contact(ImportRow),
    Invalid(RejectedRow),
}

/// Reads rows under one mapping. A number met again later in the file is left out by the
/// store, which can tell without the file's numbers held in memory.
pub struct RowReader {
    mapping: Mapping,
    region: Option<RegionCode>,
    /// Rows whose phone number came from a numeric spreadsheet cell.
    pub numeric_phones: u64,
}

impl RowReader {
    pub fn new(mapping: Mapping, region: Option<RegionCode>) -> Self {
        Self {
            mapping,
            region,
            numeric_phones: 0,
        }
    }

    pub fn read(&mut self, source: SourceRow) -> RowOutcome {
        let row = source.number;
        match self.contact(source) {
            Ok(contact) => RowOutcome::Contact(contact),
            Err(reason) => RowOutcome::Invalid(RejectedRow { row, reason }),
        }
    }

    fn contact(&mut self, source: SourceRow) -> Result<ImportRow, String> {
        let mut phone = None;
        let mut first_name = None;
        let mut last_name = None;
        let mut email = None;
        let mut gender = None;
        let mut time_zone = None;
        let mut fields = Map::new();
        let mut opted_out = None;
        let mut groups: Vec<GroupName> = Vec::new();
        for (target, cell) in self.mapping.targets().iter().zip(source.cells) {
            let text = undefuse(cell.text.trim());
            if *target == ColumnTarget::Ignore {
                continue;
            }
            refuse_nul(text).map_err(|error| format!("{target}: {error}"))?;
            if *target == ColumnTarget::Phone {
                if text.is_empty() {
                    return Err("phone: the cell is empty".into());
                }
                let parsed = Msisdn::parse(text, self.region)
                    .map_err(|error| format!("phone: {text:?} {error}"))?;
                if cell.numeric {
                    self.numeric_phones += 1;
                }
                phone = Some(parsed);
                continue;
            }
            if text.is_empty() {
                continue;
            }
            match target {
                ColumnTarget::Phone | ColumnTarget::Ignore => {}
                ColumnTarget::FirstName => {
                    first_name =
                        Some(PersonName::parse(text).map_err(|e| format!("first_name: {e}"))?);
                }
                ColumnTarget::LastName => {
                    last_name =
                        Some(PersonName::parse(text).map_err(|e| format!("last_name: {e}"))?);
                }
                ColumnTarget::Email => {
                    email = Some(Email::parse(text).map_err(|e| format!("email: {text:?} {e}"))?);
                }
                ColumnTarget::Gender => {
                    gender = Some(Gender::parse(text).map_err(|e| format!("gender: {e}"))?);
                }
                ColumnTarget::TimeZone => {
                    time_zone = Some(
                        TimeZoneName::parse(text)
                            .map_err(|e| format!("time_zone: {text:?} {e}"))?,
                    );
                }
                ColumnTarget::OptedOut => opted_out = Some(parse_flag(text)?),
                ColumnTarget::Groups => {
                    for name in text.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                        let name = GroupName::parse(name, GroupName::NATIVE_MAX_CHARS)
                            .map_err(|e| format!("groups: {name:?} {e}"))?;
                        if !groups.contains(&name) {
                            groups.push(name);
                        }
                    }
                }
                ColumnTarget::Field(name) => {
                    if text.chars().count() > CustomFields::MAX_VALUE_CHARS {
                        return Err(format!(
                            "fields.{name}: longer than {} characters",
                            CustomFields::MAX_VALUE_CHARS
                        ));
                    }
                    fields.insert(name.clone(), Value::String(text.to_owned()));
                }
            }
        }
        Ok(ImportRow {
            row: source.number,
            phone: phone.ok_or("phone: the row has no phone cell")?,
            first_name,
            last_name,
            email,
            gender,
            time_zone,
            fields,
            opted_out,
            groups,
        })
    }
}

/// Exports write a cell a spreadsheet would run as a formula with a leading apostrophe (see
/// `export::defuse`); reading one back drops it.
fn undefuse(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '@', '+', '-']) => rest,
        _ => text,
    }
}

/// Spreadsheets say yes and no in many ways.
fn parse_flag(text: &str) -> Result<bool, String> {
    match text.to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "x" | "opted out" | "opted_out" | "stop" => Ok(true),
        "false" | "no" | "n" | "0" | "" => Ok(false),
        _ => Err(format!(
            "opted_out: {text:?} is neither yes/true/1 nor no/false/0"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::read::Cell;

    fn row(cells: &[&str]) -> SourceRow {
        SourceRow {
            number: 7,
            cells: cells
                .iter()
                .map(|text| Cell {
                    text: (*text).to_owned(),
                    numeric: false,
                })
                .collect(),
        }
    }

    fn reader() -> RowReader {
        let headers: Vec<String> = ["Phone", "Name", "Note", "Gender", "Skip"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        let targets = vec![
            ColumnTarget::Phone,
            ColumnTarget::FirstName,
            ColumnTarget::Field("note".into()),
            ColumnTarget::Gender,
            ColumnTarget::Ignore,
        ];
        RowReader::new(Mapping::new(&headers, targets).unwrap(), None)
    }

    fn reason(outcome: RowOutcome) -> String {
        match outcome {
            RowOutcome::Invalid(rejected) => rejected.reason,
            RowOutcome::Contact(contact) => panic!("accepted {contact:?}"),
        }
    }

    #[test]
    fn a_mapped_cell_with_nul_rejects_its_row() {
        let mut rows = reader();
        for (cells, field) in [
            (["+14155550100", "A\0da", "", "", ""], "first_name"),
            (["+14155550100", "Ada", "x\0", "", ""], "fields.note"),
            (["+1415555\u{0}0100", "Ada", "", "", ""], "phone"),
        ] {
            assert_eq!(
                reason(rows.read(row(&cells))),
                format!("{field}: must not contain the character U+0000 (NUL)")
            );
        }
        // A column the mapping ignores is not read.
        assert!(matches!(
            rows.read(row(&["+14155550100", "Ada", "", "", "\0"])),
            RowOutcome::Contact(_)
        ));
    }

    #[test]
    fn time_zones_are_checked_and_a_bad_one_rejects_its_row() {
        let headers: Vec<String> = ["Phone", "TZ"].iter().map(|h| (*h).to_owned()).collect();
        let mapping =
            Mapping::new(&headers, vec![ColumnTarget::Phone, ColumnTarget::TimeZone]).unwrap();
        let mut rows = RowReader::new(mapping, None);
        match rows.read(row(&["+14155550100", " Europe/Paris "])) {
            RowOutcome::Contact(contact) => assert_eq!(
                contact.time_zone.map(|z| z.as_str().to_owned()),
                Some("Europe/Paris".into())
            ),
            RowOutcome::Invalid(rejected) => panic!("{rejected:?}"),
        }
        assert_eq!(
            reason(rows.read(row(&["+14155550100", "Paris"]))),
            "time_zone: \"Paris\" must be an IANA time zone name like \"Europe/Paris\""
        );
    }

    #[test]
    fn genders_are_stored_in_one_spelling() {
        let mut rows = reader();
        match rows.read(row(&["+14155550100", "", "", "F", ""])) {
            RowOutcome::Contact(contact) => {
                assert_eq!(
                    contact.gender.map(|g| g.as_str().to_owned()),
                    Some("female".into())
                )
            }
            RowOutcome::Invalid(rejected) => panic!("{rejected:?}"),
        }
    }
}
