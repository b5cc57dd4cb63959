//! Who may see and do what (DESIGN §7): people sign in, get a session, and hold a role.
//!
//! - [`roles`]: `[auth] viewers, operators, admins` (addresses, `group:NAME` of the identity
//!   provider, `role:NAME` of the runbooks) → a person's [`Role`].
//! - [`session`]: the session cookie (a random value; the store keeps only its SHA-256), its
//!   idle and absolute timeouts, and the cookie headers.
//! - [`SignInLinks`]: one-time sign-in links, for the emailed link and for the local operator
//!   (`patchday serve` prints one, `patchday login-url` makes another). They are the approval
//!   links' format ([`crate::links`]) signed with a key derived from the link secret under
//!   another label, so a sign-in token is never an approval token or the reverse.
//!
//! Pure code: no I/O, no clock reads (callers pass `now`), randomness passed in.

pub mod oidc;
pub mod roles;
pub mod session;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::links::{LinkClaims, LinkError, LinkSigner, Purpose};

pub use roles::{Principal, Role, Roles};

/// The identity of the operator at the machine: whoever can read the daemon's output or its
/// link key. Always an admin.
pub const LOCAL_OPERATOR: &str = "local";
/// How long an emailed sign-in link works.
pub const EMAILED_LINK_TTL: Duration = Duration::minutes(15);
/// How long the local operator's sign-in URL works.
pub const LOCAL_LINK_TTL: Duration = Duration::hours(24);
/// The `step` claim of every sign-in token.
const SIGN_IN_STEP: &str = "sign-in";

/// A person as the daemon knows them for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their email address (lower case), or [`LOCAL_OPERATOR`].
    pub email: String,
    pub role: Role,
}

impl Person {
    /// The audit actor of what they do in the dashboard: `web:<email>`.
    pub fn actor(&self) -> String {
        format!("web:{}", self.email)
    }
}

/// Signs and checks one-time sign-in links.
#[derive(Debug, Clone)]
pub struct SignInLinks {
    signer: LinkSigner,
}

impl SignInLinks {
    /// Keyed with HMAC-SHA256(link secret, "patchday-sign-in"): the link secret's, but another key.
    pub fn new(link_secret: &[u8]) -> Result<SignInLinks, LinkError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(link_secret).expect("any key length");
        mac.update(b"patchday-sign-in");
        let key = mac.finalize().into_bytes();
        Ok(SignInLinks {
            signer: LinkSigner::new(&key)?,
        })
    }

    /// A token that signs `email` in once, until `now + ttl`.
    pub fn mint(
        &self,
        email: &str,
        now: DateTime<Utc>,
        ttl: Duration,
        nonce: String,
    ) -> Result<String, LinkError> {
        self.signer.sign(&LinkClaims {
            run_id: String::new(),
            step: SIGN_IN_STEP.into(),
            host: String::new(),
            recipient: email.to_string(),
            purpose: Purpose::Approval,
            expires_at: now + ttl,
            nonce,
        })
    }

    /// The claims of a good sign-in token (signature, expiry).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<LinkClaims, LinkError> {
        let claims = self.signer.verify(token, now)?;
        claims.check_target("", SIGN_IN_STEP, "")?;
        Ok(claims)
    }

    /// The CSRF value of a form that acts on `value` (a sign-in token, or a session's cookie
    /// value for the sign-out form).
    pub fn csrf(&self, value: &str) -> String {
        self.signer.csrf_token(value)
    }

    /// Checks a form's CSRF value in constant time.
    pub fn check_csrf(&self, value: &str, csrf: &str) -> Result<(), LinkError> {
        self.signer.check_csrf(value, csrf)
    }
}

/// An address as the sign-in form takes it: trimmed, lower case, one `@` with text on both
/// sides, no spaces or controls, at most 254 bytes. `None` when it is not one.
pub fn normalize_email(text: &str) -> Option<String> {
    let email = text.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn a_sign_in_token_is_not_an_approval_token_and_expires() {
        let secret = [7u8; 32];
        let links = SignInLinks::new(&secret).unwrap();
        let token = links
            .mint("alice@example.com", now(), EMAILED_LINK_TTL, "n1".into())
            .unwrap();
        let claims = links.verify(&token, now()).unwrap();
        assert_eq!(claims.recipient, "alice@example.com");
        assert_eq!(
            links.verify(&token, now() + EMAILED_LINK_TTL),
            Err(LinkError::Expired {
                at: now() + EMAILED_LINK_TTL
            })
        );
        // The approval links' signer (the same secret) does not take it, nor it theirs.
        let approvals = LinkSigner::new(&secret).unwrap();
        assert_eq!(
            approvals.verify(&token, now()),
            Err(LinkError::BadSignature)
        );
        let approval = approvals
            .sign(&LinkClaims {
                run_id: "r1".into(),
                step: "cab".into(),
                host: String::new(),
                recipient: "alice@example.com".into(),
                purpose: Purpose::Approval,
                expires_at: now() + Duration::hours(1),
                nonce: "n2".into(),
            })
            .unwrap();
        assert_eq!(links.verify(&approval, now()), Err(LinkError::BadSignature));
        // Another daemon's secret: refused.
        let other = SignInLinks::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&token, now()), Err(LinkError::BadSignature));
    }

    #[test]
    fn addresses_are_normalized_or_refused() {
        assert_eq!(
            normalize_email("  Alice@Example.COM "),
            Some("alice@example.com".into())
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }
}
