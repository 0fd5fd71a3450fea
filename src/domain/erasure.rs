//! Erasure: a person's number is kept only as a keyed hash, so that it can be recognised when it
//! comes back (and refused) without being readable from the database.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The name under which the key is kept in `server_secrets`.
pub const ERASURE_SECRET: &str = "erasure";

/// Why a number is refused: its owner had it erased.
pub const ERASED_REASON: &str = "this number was erased at its owner's request; it comes back only when they opt in by \
     keyword themselves";

/// The hash a plan keeps of an erased number: HMAC-SHA256 under the instance's key, of the plan
/// and the number, in hex. Without the key (in the same database, but never in an export of a
/// table) a hash cannot be tried against the few billion possible numbers.
pub fn number_hash(key: &[u8], plan: &str, phone: &str) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(plan.as_bytes());
    mac.update(b"\n");
    mac.update(phone.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_plans_and_the_keys() {
        let one = number_hash(b"key", "plan", "+14155550100");
        assert_eq!(one, number_hash(b"key", "plan", "+14155550100"));
        assert_ne!(one, number_hash(b"other key", "plan", "+14155550100"));
        assert_ne!(one, number_hash(b"key", "other plan", "+14155550100"));
        assert_ne!(one, number_hash(b"key", "plan", "+14155550101"));
        assert!(!one.contains("4155550100"));
        assert_eq!(one.len(), 64);
    }
}
