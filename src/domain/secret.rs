//! Random secrets: API tokens, session ids, CSRF tokens and the server's own keys.

use rand::RngCore;

/// 32 random bytes as 64 hex digits.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
