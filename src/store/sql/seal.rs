//! Contact cursors hold the last contact's key, the exact tie-break of every contact order. The
//! key comes from one sequence for the whole instance, so a plain key would tell a plan how many
//! contacts every plan creates: it travels sealed in one AES block under a server secret, with
//! a check tied to the plan so that a cursor that was altered, or is another plan's, is refused.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::domain::ids::PlanId;

/// The name under which the secret is kept in `server_secrets`.
pub(crate) const CURSOR_SECRET: &str = "contact-cursor";

pub(crate) struct CursorSeal {
    cipher: Aes128,
}

impl CursorSeal {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(b"roster contact cursor\0");
        let derived = mac.finalize().into_bytes();
        Self {
            cipher: Aes128::new_from_slice(&derived[..16]).expect("AES-128 takes 16 bytes"),
        }
    }

    pub(crate) fn seal(&self, plan: &PlanId, key: i64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&key.to_be_bytes());
        block[8..].copy_from_slice(&plan_check(plan));
        let mut block = Array::from(block);
        self.cipher.encrypt_block(&mut block);
        block.into()
    }

    /// The key sealed for this plan, or `None` when the block was not sealed for it.
    pub(crate) fn open(&self, plan: &PlanId, sealed: &[u8; 16]) -> Option<i64> {
        let mut block = Array::from(*sealed);
        self.cipher.decrypt_block(&mut block);
        let (key, check) = block.split_at(8);
        (check == plan_check(plan)).then(|| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(key);
            i64::from_be_bytes(bytes)
        })
    }
}

fn plan_check(plan: &PlanId) -> [u8; 8] {
    let digest = Sha256::digest(plan.as_str().as_bytes());
    let mut check = [0u8; 8];
    check.copy_from_slice(&digest[..8]);
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str) -> PlanId {
        PlanId::from_trusted(id.to_owned())
    }

    #[test]
    fn a_sealed_key_opens_for_its_plan_only() {
        let seal = CursorSeal::new(b"secret");
        let ours = plan("0123456789abcdef0123456789abcdef");
        let theirs = plan("fedcba9876543210fedcba9876543210");
        for key in [0, 1, 41, i64::MAX] {
            let sealed = seal.seal(&ours, key);
            assert_eq!(seal.open(&ours, &sealed), Some(key));
            assert_eq!(seal.open(&theirs, &sealed), None);
            assert!(!sealed.windows(8).any(|part| part == key.to_be_bytes()));
        }
        let other_secret = CursorSeal::new(b"another secret");
        assert_eq!(other_secret.open(&ours, &seal.seal(&ours, 7)), None);
    }

    #[test]
    fn a_changed_bit_is_refused() {
        let seal = CursorSeal::new(b"secret");
        let ours = plan("0123456789abcdef0123456789abcdef");
        let sealed = seal.seal(&ours, 12345);
        for byte in 0..16 {
            let mut altered = sealed;
            altered[byte] ^= 1;
            assert_eq!(seal.open(&ours, &altered), None);
        }
    }
}
