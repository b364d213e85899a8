//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value. The
//! associated data binds each ciphertext to its org, workspace and key, so a
//! row copied to another scope does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hearth_core::{OrgId, WorkspaceId};
use hearth_store::SealedSecret;
use rand::RngCore;

#[derive(Clone)]
pub struct SecretCipher {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("secret key must be 32 bytes as base64 or 64 hex characters (got {0} bytes after decoding)")]
    Length(usize),
    #[error("secret key is neither base64 nor hex")]
    Encoding,
}

impl SecretCipher {
    /// Parses a key given as 64 hex characters or base64 (standard or url-safe).
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| KeyError::Encoding)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| KeyError::Encoding)?
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) })
    }

    /// A new random key, base64 encoded.
    pub fn generate_key_text() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    fn aad(org: OrgId, workspace: Option<WorkspaceId>, key: &str) -> Vec<u8> {
        let scope = workspace.map(|w| w.to_string()).unwrap_or_default();
        format!("hearth-secret/v1\0{org}\0{scope}\0{key}").into_bytes()
    }

    /// Encrypts one value. A failure (which AES-GCM reports only for inputs
    /// beyond its size limits) is an error, never an empty ciphertext.
    pub fn seal(
        &self,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        key: &str,
        value: &str,
    ) -> Result<SealedSecret, aes_gcm::Error> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(org, workspace, key);
        let ciphertext =
            self.cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad })?;
        Ok(SealedSecret { key: key.to_owned(), nonce: nonce.to_vec(), ciphertext })
    }

    /// The plaintext, or `None` when it cannot be decrypted with this key.
    pub fn open(&self, org: OrgId, workspace: Option<WorkspaceId>, sealed: &SealedSecret) -> Option<String> {
        if sealed.nonce.len() != 12 {
            return None;
        }
        let aad = Self::aad(org, workspace, &sealed.key);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_scope() {
        let cipher = SecretCipher::from_text(&SecretCipher::generate_key_text()).unwrap();
        let ws = Some(WorkspaceId::new_random());
        let sealed = cipher.seal(OrgId::DEFAULT, ws, "API_KEY", "s3cret").unwrap();
        assert_ne!(sealed.ciphertext, b"s3cret");
        assert_eq!(cipher.open(OrgId::DEFAULT, ws, &sealed).as_deref(), Some("s3cret"));
        assert_eq!(cipher.open(OrgId::DEFAULT, None, &sealed), None, "bound to its workspace");
        let other = SecretCipher::from_text(&SecretCipher::generate_key_text()).unwrap();
        assert_eq!(other.open(OrgId::DEFAULT, ws, &sealed), None);
    }

    #[test]
    fn keys_are_accepted_as_hex_or_base64_and_must_be_32_bytes() {
        assert!(SecretCipher::from_text(&"ab".repeat(32)).is_ok());
        assert!(SecretCipher::from_text(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(matches!(SecretCipher::from_text(&STANDARD.encode([7u8; 16])), Err(KeyError::Length(16))));
        assert!(matches!(SecretCipher::from_text("not a key!"), Err(KeyError::Encoding)));
    }
}
