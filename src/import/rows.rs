//! One row of a file made into a contact, or rejected with the reason.

use serde_json::{Map, Value};

use super::mapping::{ColumnTarget, Mapping};
use super::read::SourceRow;
use crate::domain::contact::{CustomFields, Email, Gender, PersonName};
use crate::domain::group::GroupName;
use crate::domain::msisdn::{Msisdn, RegionCode};
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
        let mut fields = Map::new();
        let mut opted_out = None;
        let mut groups: Vec<GroupName> = Vec::new();
        for (target, cell) in self.mapping.targets().iter().zip(source.cells) {
            let text = undefuse(cell.text.trim());
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
