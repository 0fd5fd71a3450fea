//! First guesses at what each column of an upload is, in Roster's mapping vocabulary: `phone`,
//! `first_name`, `last_name`, `email`, `gender`, `time_zone`, `opted_out`, `groups`,
//! `fields.NAME` (a custom field) and `ignore`. The operator confirms or changes them before the import runs.

use std::collections::HashSet;

use super::SourceRow;
use super::columns::{is_email_like, is_phone_like};

/// The longest custom field name Roster accepts, in bytes.
const MAX_FIELD_NAME: usize = 64;

/// Built-in targets a column can map to, each at most once, with the header spellings (lower
/// case, without spaces, `_`, `-` and `.`) that suggest them.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "phone",
        &[
            "phone",
            "phonenumber",
            "phoneno",
            "mobile",
            "mobilenumber",
            "mobileno",
            "mobilephone",
            "cell",
            "cellphone",
            "cellnumber",
            "cellular",
            "tel",
            "telno",
            "telephone",
            "telephonenumber",
            "msisdn",
            "number",
            "gsm",
            "whatsapp",
            "whatsappnumber",
            "contactnumber",
        ],
    ),
    (
        "first_name",
        &["firstname", "givenname", "forename", "first", "fname"],
    ),
    (
        "last_name",
        &["lastname", "surname", "familyname", "last", "lname"],
    ),
    ("email", &["email", "emailaddress", "mail", "mailaddress"]),
    ("gender", &["gender", "sex"]),
    // "Time zone", "time_zone" and "TimeZone" all come to "timezone".
    ("time_zone", &["timezone", "tz"]),
    ("opted_out", &["optedout", "optout", "unsubscribed"]),
    (
        "groups",
        &[
            "groups",
            "group",
            "lists",
            "list",
            "categories",
            "category",
            "tags",
            "tag",
        ],
    ),
];

/// The columns a vCard file has beyond the mapped ones (see the vCard reader's headers).
const VCARD_IGNORED: &[&str] = &["fullname", "otherphones", "note"];

/// What a column is, by its header alone.
enum Guess {
    Builtin(&'static str),
    Custom(String),
    Ignore,
}

/// One suggestion per header, in Roster's mapping vocabulary. Matching ignores case, spaces,
/// `_`, `-` and `.`; a header already in the vocabulary's form (`first_name`, `fields.city`)
/// maps to itself. Only the first column that matches a built-in target gets it; a later one
/// becomes a custom field.
pub fn suggest_mapping(headers: &[String]) -> Vec<String> {
    suggest_mapping_with_samples(headers, &[])
}

/// Like [`suggest_mapping`], and where a header says nothing (a file without a header row has
/// only "Column 1", "Column 2"…), the first rows decide: a column of phone numbers is `phone`, a
/// column of email addresses `email`, unless another column already took it.
pub fn suggest_mapping_with_samples(headers: &[String], samples: &[SourceRow]) -> Vec<String> {
    let guesses: Vec<Guess> = headers.iter().map(|header| guess(header)).collect();
    let mut taken: HashSet<&'static str> = HashSet::new();
    let mut builtin: Vec<Option<&'static str>> = guesses
        .iter()
        .map(|guess| match guess {
            Guess::Builtin(target) if taken.insert(target) => Some(*target),
            _ => None,
        })
        .collect();
    for (index, guess) in guesses.iter().enumerate() {
        if !matches!(guess, Guess::Custom(_)) {
            continue;
        }
        let target = match sample_kind(samples, index) {
            Some(target) if !taken.contains(target) => target,
            _ => continue,
        };
        taken.insert(target);
        if let Some(slot) = builtin.get_mut(index) {
            *slot = Some(target);
        }
    }
    let mut custom_taken: HashSet<String> = HashSet::new();
    guesses
        .iter()
        .zip(&builtin)
        .zip(headers)
        .map(|((guess, builtin), header)| {
            if let Some(target) = builtin {
                return (*target).to_owned();
            }
            let name = match guess {
                Guess::Ignore => return "ignore".to_owned(),
                Guess::Custom(name) => name.clone(),
                // A repeat of a built-in target.
                Guess::Builtin(_) => field_name(header),
            };
            if name.is_empty() {
                return "ignore".to_owned();
            }
            format!("fields.{}", unique(name, &mut custom_taken))
        })
        .collect()
}

fn guess(header: &str) -> Guess {
    let header = header.trim();
    if let Some(rest) = header.strip_prefix("fields.") {
        return Guess::Custom(field_name(rest));
    }
    if header == "ignore" {
        return Guess::Ignore;
    }
    let key: String = header
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    if key == "organization" || key == "organisation" {
        return Guess::Custom("organization".to_owned());
    }
    let report_column = |column: &str| {
        column
            .chars()
            .filter(|c| *c != ' ')
            .flat_map(char::to_lowercase)
            .eq(key.chars())
    };
    if VCARD_IGNORED.contains(&key.as_str())
        || crate::import::rejected::REPORT_COLUMNS
            .iter()
            .any(|column| report_column(column))
    {
        return Guess::Ignore;
    }
    for (target, spellings) in KNOWN {
        if spellings.contains(&key.as_str()) {
            return Guess::Builtin(target);
        }
    }
    Guess::Custom(field_name(header))
}

/// A custom field name from a header: lower case, each run of characters other than letters,
/// digits, `_` and `-` replaced by `_`, trimmed of `_`, at most 64 bytes. Empty if nothing is
/// left, which maps to `ignore`.
pub(super) fn field_name(header: &str) -> String {
    let mut name = String::new();
    let mut in_run = false;
    for c in header.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            name.push(c);
            in_run = false;
        } else if !in_run {
            name.push('_');
            in_run = true;
        }
    }
    truncate(name.trim_matches('_'), MAX_FIELD_NAME)
        .trim_end_matches('_')
        .to_owned()
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// `name`, or `name_2`, `name_3`… if a column already has it.
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let mut suffix = 2u32;
    loop {
        let tail = format!("_{suffix}");
        let candidate = format!(
            "{}{tail}",
            truncate(&name, MAX_FIELD_NAME.saturating_sub(tail.len()))
        );
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        suffix += 1;
    }
}

/// `phone` or `email` if most of the column's non-empty sample values look like one.
fn sample_kind(samples: &[SourceRow], column: usize) -> Option<&'static str> {
    let values: Vec<&str> = samples
        .iter()
        .filter_map(|row| row.cells.get(column))
        .map(|cell| cell.text.as_str())
        .filter(|text| !text.is_empty())
        .collect();
    if values.is_empty() {
        return None;
    }
    let most =
        |test: fn(&str) -> bool| values.iter().filter(|text| test(text)).count() * 2 > values.len();
    if most(is_phone_like) {
        Some("phone")
    } else if most(is_email_like) {
        Some("email")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::Cell;
    use super::*;

    fn suggest(headers: &[&str]) -> Vec<String> {
        let headers: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
        suggest_mapping(&headers)
    }

    #[test]
    fn typical_headers() {
        assert_eq!(
            suggest(&[
                "Mobile Number",
                "First Name",
                "SURNAME",
                "E-mail",
                "Sex",
                "Time Zone",
                "Opt-Out",
                "Tags",
                "City",
                "Date of Birth",
            ]),
            [
                "phone",
                "first_name",
                "last_name",
                "email",
                "gender",
                "time_zone",
                "opted_out",
                "groups",
                "fields.city",
                "fields.date_of_birth",
            ]
        );
    }

    #[test]
    fn spellings_ignore_case_spaces_and_punctuation() {
        for phone in [
            "phone_number",
            "Phone.Number",
            "MSISDN",
            "WhatsApp",
            "tel",
            "Cell Phone",
        ] {
            assert_eq!(suggest(&[phone]), ["phone"], "{phone}");
        }
        assert_eq!(
            suggest(&["given-name", "Family Name"]),
            ["first_name", "last_name"]
        );
    }

    #[test]
    fn time_zone_spellings() {
        for header in ["time zone", "Timezone", "TZ", "time_zone", "Time-Zone"] {
            assert_eq!(suggest(&[header]), ["time_zone"], "{header}");
        }
    }

    #[test]
    fn vocabulary_forms_map_to_themselves() {
        assert_eq!(
            suggest(&[
                "first_name",
                "fields.city",
                "fields.Loyalty Tier",
                "ignore",
                "fields.!!"
            ]),
            [
                "first_name",
                "fields.city",
                "fields.loyalty_tier",
                "ignore",
                "ignore"
            ]
        );
    }

    #[test]
    fn only_the_first_match_gets_a_builtin() {
        assert_eq!(
            suggest(&["Phone", "Mobile", "Email", "E-Mail", "E-Mail"]),
            [
                "phone",
                "fields.mobile",
                "email",
                "fields.e-mail",
                "fields.e-mail_2"
            ]
        );
    }

    #[test]
    fn vcard_headers() {
        let headers = super::super::vcard::HEADERS;
        assert_eq!(
            suggest(&headers),
            [
                "phone",
                "ignore",
                "first_name",
                "last_name",
                "ignore",
                "email",
                "fields.organization",
                "groups",
                "ignore",
                "gender",
                "time_zone",
                "opted_out"
            ]
        );
    }

    #[test]
    fn custom_field_names() {
        assert_eq!(field_name("  Straße / Hausnr. "), "straße_hausnr");
        assert_eq!(field_name("***"), "");
        assert_eq!(field_name(&"x".repeat(100)).len(), 64);
        // Cut at 64 bytes without splitting a character, and no trailing underscore.
        assert_eq!(field_name(&format!("{}é", "a".repeat(63))), "a".repeat(63));
        assert_eq!(field_name(&format!("{} b", "a".repeat(63))), "a".repeat(63));
        assert_eq!(suggest(&["???"]), ["ignore"]);
    }

    #[test]
    fn a_rejected_rows_file_uploaded_again_ignores_its_report_columns() {
        assert_eq!(
            suggest(&[
                "Rejected row",
                "Rejected because",
                "Mobile",
                "rejected_because_2"
            ]),
            ["ignore", "ignore", "phone", "fields.rejected_because_2"]
        );
    }

    #[test]
    fn samples_name_headerless_columns() {
        let row = |texts: [&str; 3]| SourceRow {
            number: 1,
            cells: texts
                .iter()
                .map(|text| Cell {
                    text: (*text).to_owned(),
                    numeric: false,
                })
                .collect(),
        };
        let headers = vec![
            "Column 1".to_owned(),
            "Column 2".to_owned(),
            "Column 3".to_owned(),
        ];
        let samples = [
            row(["Ada", "+14155552671", "ada@example.com"]),
            row(["Bob", "+14155552672", ""]),
        ];
        assert_eq!(
            suggest_mapping_with_samples(&headers, &samples),
            ["fields.column_1", "phone", "email"]
        );
    }
}
