//! Identifiers. Groups and contacts use ULIDs (sortable by creation, like Sinch's group ids);
//! service plans use 32 lowercase hex characters, the shape of Sinch's `service_plan_id`.

use std::fmt;

use rand::RngCore;

/// A new ULID, greater than every other this process made: within one millisecond the random
/// part counts up. Rows written in the order their ids are made then get their storage keys in
/// id order too, and lists kept in key order (a group's members) are in id order.
fn monotonic_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Fails only when 2^80 ids were made in one millisecond.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(monotonic_ulid().to_string())
            }

            /// Accepts a ULID in any case; `None` when the text cannot be an id of this kind.
            pub fn parse(input: &str) -> Option<Self> {
                ulid::Ulid::from_string(input)
                    .ok()
                    .map(|id| Self(id.to_string()))
            }

            /// For ids read back from our own database, which only ever holds valid ones.
            pub fn from_trusted(stored: String) -> Self {
                Self(stored)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

ulid_id!(
    /// Identifies a contact group within its plan.
    GroupId
);
ulid_id!(
    /// Identifies a contact within its plan.
    ContactId
);
ulid_id!(
    /// Identifies a batch of messages within its plan.
    BatchId
);
ulid_id!(
    /// Identifies a series of recurring batches within its plan.
    SeriesId
);
ulid_id!(
    /// Identifies an uploaded file being imported, within its plan.
    ImportId
);
ulid_id!(
    /// Identifies an export of contacts, within its plan.
    ExportId
);
ulid_id!(
    /// Identifies a webhook, within its plan.
    WebhookId
);
ulid_id!(
    /// Identifies an event sent to webhooks.
    EventId
);

impl ContactId {
    /// The ULID's 16 bytes, big-endian, which order as the text does.
    pub fn to_bytes(&self) -> [u8; 16] {
        // Every ContactId holds a ULID: made, parsed, or read back from the database.
        ulid::Ulid::from_string(&self.0)
            .map(|id| id.to_bytes())
            .unwrap_or_default()
    }

    /// `None` unless `bytes` are 16.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        Some(Self(ulid::Ulid::from_bytes(bytes).to_string()))
    }
}

/// Identifies a service plan (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanId(String);

impl PlanId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn parse(input: &str) -> Option<Self> {
        let valid = input.len() == 32
            && input
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self(input.to_owned()))
    }

    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PlanId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_round_trip_through_their_bytes_in_order() {
        let earlier = ContactId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        let later = ContactId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
        assert_eq!(
            ContactId::from_bytes(&earlier.to_bytes()),
            Some(earlier.clone())
        );
        assert_eq!(
            ContactId::from_bytes(&later.to_bytes()),
            Some(later.clone())
        );
        assert_eq!(later.to_bytes(), [0xff; 16]);
        assert!(earlier.to_bytes() < later.to_bytes());
        assert_eq!(ContactId::from_bytes(&[0; 15]), None);
    }

    #[test]
    fn group_ids_round_trip_and_normalise_case() {
        let id = GroupId::generate();
        assert_eq!(GroupId::parse(&id.as_str().to_lowercase()), Some(id));
        assert_eq!(GroupId::parse("not-an-id"), None);
    }

    #[test]
    fn plan_ids_are_32_lowercase_hex() {
        let id = PlanId::generate();
        assert_eq!(PlanId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(PlanId::parse(&id.as_str().to_uppercase()), None);
        assert_eq!(PlanId::parse("abc"), None);
    }
}
