//! Sealing secrets at rest: XChaCha20-Poly1305 with a random 24-byte nonce per value.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::StoreError;

const NONCE_LEN: usize = 24;

/// Seals and opens values with the configured 32-byte key. Holds no plaintext.
pub struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(XChaCha20Poly1305::new(key.into()))
    }

    /// `nonce || ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let mut out = nonce_bytes.to_vec();
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        out.extend(
            self.0
                .encrypt(&nonce, plaintext)
                .expect("XChaCha20-Poly1305 encryption of an in-memory buffer"),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::Unseal("too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::from(
            <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| StoreError::Unseal("bad nonce"))?,
        );
        self.0
            .decrypt(&nonce, body)
            .map_err(|_| StoreError::Unseal("wrong key or tampered value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let c = Cipher::new(&[7; 32]);
        let sealed = c.seal(b"refresh-token");
        assert_ne!(&sealed[24..], b"refresh-token");
        assert_eq!(c.open(&sealed).unwrap(), b"refresh-token");
        assert_ne!(c.seal(b"x"), c.seal(b"x"), "nonces differ");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(c.open(&bad).is_err());
        assert!(Cipher::new(&[8; 32]).open(&sealed).is_err());
        assert!(c.open(b"short").is_err());
    }
}
