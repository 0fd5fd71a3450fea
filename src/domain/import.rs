//! What an import may do: which groups it may add its contacts to, and what a row makes of a
//! contact the plan already has.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::group::GroupStatus;

/// What to do with a contact the plan already has (matched by phone number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExistingContacts {
    /// Cells with a value overwrite the contact's; empty cells leave it as it is.
    Update,
    /// The contact's fields are left as they are (it is still added to the target groups).
    Skip,
    /// The row replaces the contact's names, email, gender, time zone and custom fields; what
    /// the row leaves empty is cleared.
    ReplaceFields,
}

/// The attributes of a contact an import may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    pub time_zone: Option<String>,
    pub fields: Map<String, Value>,
}

/// What an existing contact becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub attributes: Attributes,
    /// The row opts the contact out now (it was not before).
    pub opts_out: bool,
}

/// What `row` (the cells it has a value in, and `opted_out`) makes of a contact with `existing`
/// attributes under `mode`; `None` when the contact stays exactly as it is. An import opts a
/// contact out but never back in.
pub fn merge(
    existing: &Attributes,
    existing_opted_out: bool,
    row: &Attributes,
    row_opted_out: Option<bool>,
    mode: ExistingContacts,
) -> Option<Merged> {
    let attributes = match mode {
        ExistingContacts::Skip => existing.clone(),
        ExistingContacts::Update => {
            let mut fields = existing.fields.clone();
            fields.extend(row.fields.clone());
            let or_existing =
                |cell: &Option<String>, own: &Option<String>| cell.clone().or_else(|| own.clone());
            Attributes {
                first_name: or_existing(&row.first_name, &existing.first_name),
                last_name: or_existing(&row.last_name, &existing.last_name),
                email: or_existing(&row.email, &existing.email),
                gender: or_existing(&row.gender, &existing.gender),
                time_zone: or_existing(&row.time_zone, &existing.time_zone),
                fields,
            }
        }
        ExistingContacts::ReplaceFields => row.clone(),
    };
    let opts_out = row_opted_out == Some(true) && !existing_opted_out;
    if !opts_out && &attributes == existing {
        return None;
    }
    Some(Merged {
        attributes,
        opts_out,
    })
}

/// Why a group cannot receive an import's contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRefusal {
    /// The group is deleted.
    Deleted,
    /// A smart group's members follow its rule.
    Smart,
}

/// Whether an import may add its contacts to a group in `status`, smart or not.
pub fn check_target(status: GroupStatus, smart: bool) -> Result<(), TargetRefusal> {
    if status != GroupStatus::Active {
        Err(TargetRefusal::Deleted)
    } else if smart {
        Err(TargetRefusal::Smart)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing() -> Attributes {
        Attributes {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            gender: None,
            time_zone: Some("Europe/London".into()),
            fields: serde_json::json!({"city": "London", "vip": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn row() -> Attributes {
        Attributes {
            first_name: Some("Augusta".into()),
            last_name: None,
            email: None,
            gender: Some("female".into()),
            time_zone: None,
            fields: serde_json::json!({"city": "Paris"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn update_overwrites_the_cells_the_row_has_and_keeps_the_rest() {
        let merged = merge(&existing(), false, &row(), None, ExistingContacts::Update);
        let attributes = merged.map(|m| m.attributes).unwrap_or_default();
        assert_eq!(attributes.first_name.as_deref(), Some("Augusta"));
        assert_eq!(attributes.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(attributes.email.as_deref(), Some("ada@example.com"));
        assert_eq!(attributes.gender.as_deref(), Some("female"));
        assert_eq!(attributes.time_zone.as_deref(), Some("Europe/London"));
        assert_eq!(attributes.fields["city"], "Paris");
        assert_eq!(attributes.fields["vip"], true);
    }

    #[test]
    fn replace_fields_clears_what_the_row_leaves_empty() {
        let merged = merge(
            &existing(),
            false,
            &row(),
            None,
            ExistingContacts::ReplaceFields,
        );
        assert_eq!(merged.map(|m| m.attributes), Some(row()));
    }

    #[test]
    fn skip_changes_nothing_but_may_still_opt_out() {
        assert_eq!(
            merge(&existing(), false, &row(), None, ExistingContacts::Skip),
            None
        );
        let merged = merge(
            &existing(),
            false,
            &row(),
            Some(true),
            ExistingContacts::Skip,
        );
        assert_eq!(
            merged,
            Some(Merged {
                attributes: existing(),
                opts_out: true
            })
        );
    }

    #[test]
    fn a_row_with_nothing_new_leaves_the_contact_as_it_is() {
        let same = Attributes {
            first_name: Some("Ada".into()),
            ..Attributes::default()
        };
        assert_eq!(
            merge(
                &existing(),
                false,
                &same,
                Some(false),
                ExistingContacts::Update
            ),
            None
        );
    }

    #[test]
    fn an_import_never_opts_a_contact_back_in_nor_out_twice() {
        let merged = merge(
            &existing(),
            true,
            &row(),
            Some(false),
            ExistingContacts::Update,
        );
        assert_eq!(merged.map(|m| m.opts_out), Some(false));
        assert_eq!(
            merge(
                &existing(),
                true,
                &existing(),
                Some(true),
                ExistingContacts::Update
            ),
            None
        );
    }

    #[test]
    fn only_active_static_groups_take_imported_contacts() {
        assert_eq!(check_target(GroupStatus::Active, false), Ok(()));
        assert_eq!(
            check_target(GroupStatus::Active, true),
            Err(TargetRefusal::Smart)
        );
        assert_eq!(
            check_target(GroupStatus::Deleted, false),
            Err(TargetRefusal::Deleted)
        );
        assert_eq!(
            check_target(GroupStatus::Deleted, true),
            Err(TargetRefusal::Deleted)
        );
    }
}
