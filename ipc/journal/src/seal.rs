//! Encryption of what records keep secret.
//!
//! Every segment has a data key of its own, derived with HKDF-SHA256 from a master key
//! and a random 256-bit salt written in the segment's header (info: a label and the
//! stream's name). Within a segment every record has a distinct sequence number, and
//! the nonce is that number (eight bytes, big-endian, then four zero bytes), so a nonce
//! never repeats under one key. A segment is never appended to after the process that
//! created it stops: a writer that starts again (after a crash, say, which may have
//! left a torn record whose sequence number will be used again) opens a new segment,
//! with a new salt and so a new key.
//!
//! The associated data binds a record to its place: the stream's name, the sequence
//! number, the time stamp and the clear metadata. A record moved to another position
//! or another stream, or with its metadata changed, fails authentication.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a GCM tag, added to every sealed part.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of a segment's salt.
pub(crate) const SALT_LEN: usize = 32;

/// A 256-bit master key. Wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random key from the operating system's random source.
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        MasterKey(key)
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }
}

/// The cipher of one segment.
pub(crate) struct SegmentCipher {
    aead: Aes256Gcm,
    stream: Box<[u8]>,
}

impl SegmentCipher {
    /// The cipher of a segment of `stream` with `salt`, under `master`.
    pub(crate) fn new(master: &MasterKey, salt: &[u8; SALT_LEN], stream: &str) -> SegmentCipher {
        let hkdf = Hkdf::<Sha256>::new(Some(salt), &master.0);
        let mut key = [0u8; 32];
        let info = [b"weft journal segment v1\0".as_slice(), stream.as_bytes()].concat();
        hkdf.expand(&info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let aead = Aes256Gcm::new((&key).into());
        key.zeroize();
        SegmentCipher {
            aead,
            stream: stream.as_bytes().into(),
        }
    }

    /// Encrypts `secret` of the record `seq`, appending ciphertext and tag to `out`.
    pub(crate) fn seal(&self, seq: u64, ts_ms: u64, meta: &[u8], secret: &[u8], out: &mut Vec<u8>) {
        let aad = self.aad(seq, ts_ms, meta);
        let sealed = self
            .aead
            .encrypt(
                &nonce(seq),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any message under 64 GiB");
        out.extend_from_slice(&sealed);
    }

    /// Decrypts and authenticates a record's sealed part; `None` if it fails.
    pub(crate) fn open(&self, seq: u64, ts_ms: u64, meta: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let aad = self.aad(seq, ts_ms, meta);
        self.aead
            .decrypt(
                &nonce(seq),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
    }

    fn aad(&self, seq: u64, ts_ms: u64, meta: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.stream.len() + 20 + meta.len());
        aad.extend_from_slice(&(self.stream.len() as u32).to_le_bytes());
        aad.extend_from_slice(&self.stream);
        aad.extend_from_slice(&seq.to_le_bytes());
        aad.extend_from_slice(&ts_ms.to_le_bytes());
        aad.extend_from_slice(meta);
        aad
    }
}

fn nonce(seq: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seq.to_be_bytes());
    n.into()
}

/// A new random salt for a segment.
pub(crate) fn new_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_only_in_their_place() {
        let master = MasterKey::generate();
        let salt = new_salt();
        let cipher = SegmentCipher::new(&master, &salt, "orders.#");
        let mut sealed = vec![];
        cipher.seal(7, 100, b"meta", b"the secret payload", &mut sealed);
        assert_eq!(sealed.len(), 18 + TAG_LEN);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            cipher.open(7, 100, b"meta", &sealed).as_deref(),
            Some(b"the secret payload".as_slice())
        );
        assert_eq!(cipher.open(8, 100, b"meta", &sealed), None, "another seq");
        assert_eq!(cipher.open(7, 101, b"meta", &sealed), None, "another time");
        assert_eq!(cipher.open(7, 100, b"metb", &sealed), None, "other meta");
        let other_stream = SegmentCipher::new(&master, &salt, "prices.#");
        assert_eq!(other_stream.open(7, 100, b"meta", &sealed), None);
        let other_salt = SegmentCipher::new(&master, &new_salt(), "orders.#");
        assert_eq!(other_salt.open(7, 100, b"meta", &sealed), None);
        let other_key = SegmentCipher::new(&MasterKey::generate(), &salt, "orders.#");
        assert_eq!(other_key.open(7, 100, b"meta", &sealed), None);
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert_eq!(cipher.open(7, 100, b"meta", &flipped), None);
    }
}
