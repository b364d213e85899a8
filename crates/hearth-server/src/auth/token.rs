//! Token secrets: minting (32 random bytes, base64url without padding, 43
//! characters), hashing (only the sha256 is stored), and reading the one a
//! request presents.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use hearth_core::{OrgId, Role, TokenId, WorkspaceId};
use hearth_store::NewToken;

use crate::access::Access;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly generated token: the secret (shown once) and what is stored.
pub struct Minted {
    pub secret: String,
    pub record: NewToken,
}

/// 32 random bytes, base64url. Never begins with `-`, which a command line
/// would take for a flag (`hearth agent --token -Y…`): such a draw (1 in 64)
/// is drawn again.
pub fn generate_secret() -> String {
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        if !secret.starts_with('-') {
            return secret;
        }
    }
}

pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Mints a token of workspace `workspace_id` (its runtime's; no role).
pub fn mint(org_id: OrgId, workspace_id: WorkspaceId, name: Option<String>) -> Minted {
    minted(org_id, Some(workspace_id), None, name)
}

/// Mints an org token with `role` in its org.
pub fn mint_org(org_id: OrgId, role: Role, name: Option<String>) -> Minted {
    minted(org_id, None, Some(role), name)
}

fn minted(org_id: OrgId, workspace_id: Option<WorkspaceId>, role: Option<Role>, name: Option<String>) -> Minted {
    let secret = generate_secret();
    let record = NewToken {
        id: TokenId::new_random(),
        org_id,
        workspace_id,
        role,
        name,
        prefix: secret.chars().take(8).collect(),
        hash: hash_token(&secret).to_vec(),
        now: Utc::now(),
    };
    Minted { secret, record }
}

/// A token a request presents, hashed once: its secret (compared only as
/// a hash) and its sha256, the key of the store's lookup, the token cache
/// and the per-token limits.
#[derive(Clone)]
pub struct Presented {
    secret: String,
    pub hash: [u8; 32],
}

impl Presented {
    pub fn new(secret: String) -> Self {
        let hash = hash_token(&secret);
        Self { secret, hash }
    }

    /// The token of `Authorization: Bearer <token>`. The scheme is matched
    /// without regard to case (RFC 9110 §11.1); an empty token is none.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Self::new(token.to_owned()))
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// The bearer token of a request, if any (read from the request by the
/// extractor in `caller.rs`, hashed once by the edge), and the access rule
/// of the route it was presented to ([`crate::access`]), which
/// [`super::Authenticator`] enforces.
#[derive(Clone, Default)]
pub struct Bearer {
    pub presented: Option<Presented>,
    pub access: Option<Access>,
}

impl Bearer {
    /// A token presented to a route whose rule is `access`.
    pub fn new(presented: Option<Presented>, access: Option<Access>) -> Self {
        Self { presented, access }
    }

    pub fn is_present(&self) -> bool {
        self.presented.is_some()
    }

    /// The token's sha256, when there is one.
    pub fn hash(&self) -> Option<[u8; 32]> {
        self.presented.as_ref().map(|presented| presented.hash)
    }
}

/// A bearer token that must be present: a runtime route whose body names
/// the workspace answers 401 for a missing token before reading the body.
/// (Whether the token is that workspace's is checked once the body is read.)
pub struct RequiredBearer(pub Bearer);
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test: a failed step should panic

    use axum::http::HeaderValue;

    use super::*;

    fn presented(authorization: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        Presented::from_headers(&headers).map(|p| p.secret().to_owned())
    }

    /// RFC 9110 §11.1: the scheme is case-insensitive (only `Bearer ` and
    /// `bearer ` were accepted before); anything else is no token.
    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for accepted in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc "] {
            assert_eq!(presented(accepted).as_deref(), Some("abc"), "{accepted:?}");
        }
        for refused in ["Basic abc", "Bearer ", "Bearer", "Bearerabc", "abc"] {
            assert_eq!(presented(refused), None, "{refused:?}");
        }
        let hashed = Presented::new("abc".into());
        assert_eq!(hashed.hash, hash_token("abc"), "hashed once, when read");
    }

    #[test]
    fn tokens_are_43_base64url_characters_and_unique() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_never_begin_with_a_hyphen() {
        // 1 in 64 draws begins with `-` before the redraw: 2000 tries see it.
        assert!((0..2000).map(|_| generate_secret()).all(|secret| !secret.starts_with('-') && secret.len() == 43));
    }

    #[test]
    fn minted_tokens_store_only_the_hash_and_a_prefix() {
        let minted = mint_org(OrgId::DEFAULT, Role::Owner, None);
        assert_eq!(minted.record.hash, hash_token(&minted.secret).to_vec());
        assert_eq!(minted.record.prefix, &minted.secret[..8]);
        assert_ne!(minted.record.hash, minted.secret.as_bytes());
    }
}
