//! Which column of a file becomes which part of a contact.

use std::collections::BTreeSet;
use std::fmt;

/// What one column of a file is imported as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnTarget {
    Phone,
    FirstName,
    LastName,
    Email,
    Gender,
    /// An IANA time zone name.
    TimeZone,
    /// `true`/`yes`/`1` opts the contact out.
    OptedOut,
    /// Group names separated by `;`: the contact joins each (created if missing).
    Groups,
    /// A custom field of this name.
    Field(String),
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "{0:?} is not a field: use phone, first_name, last_name, email, gender, time_zone, \
         opted_out, groups, fields.NAME or ignore"
    )]
    UnknownTarget(String),
    #[error("custom field name {0:?} must be 1 to 64 letters, digits, _ or -")]
    BadFieldName(String),
    #[error("no column is mapped to phone")]
    NoPhone,
    #[error("{target} is mapped from more than one column ({first:?} and {second:?})")]
    Twice {
        target: String,
        first: String,
        second: String,
    },
    #[error("the file has no column {0:?}")]
    UnknownColumn(String),
    #[error("the mapping names {got} columns but the file has {expected}")]
    WrongLength { expected: usize, got: usize },
}

impl ColumnTarget {
    pub fn parse(text: &str) -> Result<Self, MappingError> {
        let text = text.trim();
        Ok(match text {
            "phone" => Self::Phone,
            "first_name" => Self::FirstName,
            "last_name" => Self::LastName,
            "email" => Self::Email,
            "gender" => Self::Gender,
            "time_zone" => Self::TimeZone,
            "opted_out" => Self::OptedOut,
            "groups" => Self::Groups,
            "ignore" | "" => Self::Ignore,
            _ => match text.strip_prefix("fields.") {
                Some(name) if is_field_name(name) => Self::Field(name.to_owned()),
                Some(name) => return Err(MappingError::BadFieldName(name.to_owned())),
                None => return Err(MappingError::UnknownTarget(text.to_owned())),
            },
        })
    }
}

/// The custom field names contacts accept (see `CustomFields`).
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for ColumnTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone => f.write_str("phone"),
            Self::FirstName => f.write_str("first_name"),
            Self::LastName => f.write_str("last_name"),
            Self::Email => f.write_str("email"),
            Self::Gender => f.write_str("gender"),
            Self::TimeZone => f.write_str("time_zone"),
            Self::OptedOut => f.write_str("opted_out"),
            Self::Groups => f.write_str("groups"),
            Self::Field(name) => write!(f, "fields.{name}"),
            Self::Ignore => f.write_str("ignore"),
        }
    }
}

/// One target per column of the file, checked: exactly one phone column, and no target (but
/// `ignore`) twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    targets: Vec<ColumnTarget>,
}

impl Mapping {
    pub fn new(headers: &[String], targets: Vec<ColumnTarget>) -> Result<Self, MappingError> {
        if targets.len() != headers.len() {
            return Err(MappingError::WrongLength {
                expected: headers.len(),
                got: targets.len(),
            });
        }
        let mut seen: Vec<(&ColumnTarget, &String)> = Vec::new();
        for (target, header) in targets.iter().zip(headers) {
            if *target == ColumnTarget::Ignore {
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(t, _)| *t == target) {
                return Err(MappingError::Twice {
                    target: target.to_string(),
                    first: (*first).clone(),
                    second: header.clone(),
                });
            }
            seen.push((target, header));
        }
        if !targets.contains(&ColumnTarget::Phone) {
            return Err(MappingError::NoPhone);
        }
        Ok(Self { targets })
    }

    /// A mapping from the suggestions, overridden by `column=target` pairs naming columns by
    /// header (case-insensitive) or by 1-based position.
    pub fn with_overrides(
        headers: &[String],
        suggested: &[String],
        overrides: &[(String, String)],
    ) -> Result<Self, MappingError> {
        let mut targets: Vec<ColumnTarget> = suggested
            .iter()
            .map(|s| ColumnTarget::parse(s).unwrap_or(ColumnTarget::Ignore))
            .collect();
        targets.resize(headers.len(), ColumnTarget::Ignore);
        for (column, target) in overrides {
            let index = column_index(headers, column)
                .ok_or_else(|| MappingError::UnknownColumn(column.clone()))?;
            let target = ColumnTarget::parse(target)?;
            // A target named explicitly moves there from wherever the suggestion put it.
            if target != ColumnTarget::Ignore {
                for other in targets.iter_mut() {
                    if *other == target {
                        *other = ColumnTarget::Ignore;
                    }
                }
            }
            targets[index] = target;
        }
        Self::new(headers, targets)
    }

    pub fn targets(&self) -> &[ColumnTarget] {
        &self.targets
    }

    pub fn custom_fields(&self) -> BTreeSet<&str> {
        self.targets
            .iter()
            .filter_map(|target| match target {
                ColumnTarget::Field(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn column_index(headers: &[String], column: &str) -> Option<usize> {
    let column = column.trim();
    headers
        .iter()
        .position(|header| header.eq_ignore_ascii_case(column))
        .or_else(|| {
            column
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=headers.len()).contains(n))
                .map(|n| n - 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn targets_parse_and_print_alike() {
        for text in [
            "phone",
            "first_name",
            "last_name",
            "email",
            "gender",
            "time_zone",
            "opted_out",
            "groups",
            "fields.city",
            "ignore",
        ] {
            assert_eq!(
                ColumnTarget::parse(text).map(|t| t.to_string()),
                Ok(text.into())
            );
        }
        assert!(matches!(
            ColumnTarget::parse("fields.a b"),
            Err(MappingError::BadFieldName(_))
        ));
        assert!(matches!(
            ColumnTarget::parse("mobile"),
            Err(MappingError::UnknownTarget(_))
        ));
    }

    #[test]
    fn a_mapping_needs_one_phone_and_no_target_twice() {
        let h = headers(&["A", "B"]);
        assert_eq!(
            Mapping::new(&h, vec![ColumnTarget::Email, ColumnTarget::Ignore]),
            Err(MappingError::NoPhone)
        );
        assert!(matches!(
            Mapping::new(&h, vec![ColumnTarget::Phone, ColumnTarget::Phone]),
            Err(MappingError::Twice { .. })
        ));
        assert!(matches!(
            Mapping::new(&h, vec![ColumnTarget::Phone]),
            Err(MappingError::WrongLength { .. })
        ));
    }

    #[test]
    fn overrides_name_columns_by_header_or_position_and_move_a_target() {
        let h = headers(&["Mobile", "Work", "Name"]);
        let suggested = vec!["phone".into(), "fields.work".into(), "first_name".into()];
        let mapping = Mapping::with_overrides(
            &h,
            &suggested,
            &[
                ("work".into(), "phone".into()),
                ("3".into(), "ignore".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            mapping.targets(),
            &[
                ColumnTarget::Ignore,
                ColumnTarget::Phone,
                ColumnTarget::Ignore
            ]
        );
        assert_eq!(
            Mapping::with_overrides(&h, &suggested, &[("Fax".into(), "phone".into())]),
            Err(MappingError::UnknownColumn("Fax".into()))
        );
    }
}
