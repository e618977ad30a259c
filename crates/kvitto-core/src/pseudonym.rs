//! Keyed pseudonyms for data subjects and commitments to encrypted details (docs/FORMAT.md §3).

use crate::ids::{Commitment, ExternalRef, Id, SubjectId};

/// The ledger's 32-byte secret: the key of the subject pseudonym function. Created by `init`,
/// kept in a 0600 file next to the store, never in sled.
#[derive(Clone)]
pub struct LedgerSecret(pub [u8; 32]);

impl std::fmt::Debug for LedgerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerSecret(<secret>)")
    }
}

impl LedgerSecret {
    /// `SubjectId` = first 16 bytes of BLAKE3 keyed hash under the secret of
    /// `u32be(len(controller)) ‖ controller ‖ external_ref` (the length prefix keeps
    /// ("ab","c") and ("a","bc") apart). The same reference under another controller is
    /// another subject.
    pub fn subject_id(&self, controller: &Id, external_ref: &ExternalRef) -> SubjectId {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(controller.as_str().len() as u32).to_be_bytes());
        h.update(controller.as_str().as_bytes());
        h.update(external_ref.as_str().as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        SubjectId(out)
    }
}

/// `blake3(salt ‖ plaintext)`: the commitment an event carries to its encrypted details.
pub fn payload_commitment(salt: &[u8; 32], plaintext: &[u8]) -> Commitment {
    let mut h = blake3::Hasher::new();
    h.update(salt);
    h.update(plaintext);
    Commitment(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_separates_subjects() {
        let s = LedgerSecret([7; 32]);
        let r = ExternalRef::new("cust-1").unwrap();
        let a = s.subject_id(&Id::new("kalejdo").unwrap(), &r);
        let b = s.subject_id(&Id::new("kazoom").unwrap(), &r);
        assert_ne!(a, b);
        assert_eq!(a, s.subject_id(&Id::new("kalejdo").unwrap(), &r));
        let other = LedgerSecret([8; 32]);
        assert_ne!(a, other.subject_id(&Id::new("kalejdo").unwrap(), &r));
    }
}
