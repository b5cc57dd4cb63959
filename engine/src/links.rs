//! Signed, expiring, single-use, recipient-bound action links (DESIGN §7).
//!
//! Approval and task emails carry a link `…/l/<token>`. The token is an HMAC-SHA256-signed
//! payload holding every claim: run, step, host, recipient, purpose, expiry and a nonce.
//! Pure code: no I/O, no clock reads (the caller passes `now`), no randomness of its own (the
//! caller passes a source to [`new_nonce`]; the daemon passes OS randomness, e.g.
//! `|buf| getrandom::fill(buf).expect("OS randomness")`, tests pass a fixed pattern).
//!
//! # Token format, version 1
//!
//! `token = base64url_nopad(payload ‖ tag)`, where
//!
//! ```text
//! payload = version    1 byte   0x01
//!           purpose    1 byte   0x01 approval, 0x02 task
//!           expires_at 8 bytes  i64 big-endian, Unix seconds (UTC)
//!           run_id     1 byte length n, then n bytes of UTF-8
//!           step       1 byte length n, then n bytes of UTF-8
//!           host       1 byte length n, then n bytes of UTF-8 ("" for an unfanned step)
//!           recipient  1 byte length n, then n bytes of UTF-8 (the email address)
//!           nonce      1 byte length n, then n bytes of UTF-8
//! tag     = HMAC-SHA256(secret, "patchday-link\0" ‖ payload)      32 bytes
//! ```
//!
//! Each text claim holds at most 255 bytes (an email address has at most 254, a host name 253);
//! longer claims are refused at signing. `expires_at` keeps whole seconds (it is truncated).
//! Decoding is strict (canonical base64url, no padding), so every distinct token string is a
//! distinct byte string and a change anywhere breaks the tag.
//!
//! # Verification
//!
//! [`LinkSigner::verify`] checks, in this order: length and base64url ([`LinkError::Malformed`]),
//! version ([`LinkError::Malformed`]), the tag in constant time ([`LinkError::BadSignature`]),
//! the payload structure ([`LinkError::Malformed`]), and expiry: a link is good strictly before
//! `expires_at` and [`LinkError::Expired`] from that second on. The caller then checks the
//! target ([`LinkClaims::check_target`]) and, where it knows who is acting,
//! [`LinkClaims::check_recipient`].
//!
//! # Single use
//!
//! A token is not consumed here. The store enforces single use: the deciding transaction records
//! the token's nonce with a conditional insert/update, so of any number of concurrent POSTs of one
//! token exactly one decides and the others get [`LinkError::AlreadyUsed`].
//!
//! # What a token reveals
//!
//! The token is signed, not encrypted. It holds no secret: the key never leaves the signer, and
//! the tag does not reveal it. It does hold the recipient's email address, encoded but readable to
//! anyone who decodes the base64. That is a deliberate choice: the link is sent to that very
//! address, the address names the actor in the audit trail without a store lookup, and binding to
//! the recipient needs it. The cost is that anyone who sees the URL (a proxy log, a forwarded mail)
//! learns the address, the run and step ids and the expiry; the pages send no referrer, and none
//! of that lets them decide anything without the rest of the token.
//!
//! # CSRF
//!
//! The confirmation page's forms carry [`LinkSigner::csrf_token`], an HMAC of the link token
//! under a different label. The token in the URL is already an unguessable capability; the CSRF
//! field adds that a POST must come from our rendered page (a blind POST to the link URL fails).
//! The HTTP layer should also reject cross-site POSTs by `Origin` / `Sec-Fetch-Site`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The token format version this module writes and reads.
pub const TOKEN_VERSION: u8 = 1;
/// Shortest secret [`LinkSigner::new`] accepts, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Random bytes in a nonce made by [`new_nonce`].
pub const NONCE_BYTES: usize = 16;
/// Longest text claim, in bytes (its length is one byte in the payload).
pub const MAX_CLAIM_BYTES: usize = u8::MAX as usize;

const TAG_BYTES: usize = 32;
const HEADER_BYTES: usize = 1 + 1 + 8;
const TEXT_CLAIMS: usize = 5;
const MIN_RAW_BYTES: usize = HEADER_BYTES + TEXT_CLAIMS + TAG_BYTES;
const MAX_RAW_BYTES: usize = HEADER_BYTES + TEXT_CLAIMS * (1 + MAX_CLAIM_BYTES) + TAG_BYTES;
/// Longest token string that can be valid; longer input is refused before decoding.
pub const MAX_TOKEN_CHARS: usize = MAX_RAW_BYTES.div_ceil(3) * 4;

const LINK_LABEL: &[u8] = b"patchday-link\0";
const CSRF_LABEL: &[u8] = b"patchday-csrf\0";

/// What a link lets its recipient do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Decide an approval step (one of its `choices`).
    Approval,
    /// Report a manual task done or failed.
    Task,
}

impl Purpose {
    fn to_byte(self) -> u8 {
        match self {
            Purpose::Approval => 1,
            Purpose::Task => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Purpose::Approval),
            2 => Some(Purpose::Task),
            _ => None,
        }
    }
}

/// Everything a link says, all of it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub run_id: String,
    pub step: String,
    /// The host of a fanned-out step, or "" for the step itself (as in the store's step rows).
    pub host: String,
    /// The email address the link was sent to.
    pub recipient: String,
    pub purpose: Purpose,
    /// The first instant at which the link no longer works (whole seconds).
    pub expires_at: DateTime<Utc>,
    /// Unique per link; the store records it when the link decides (single use).
    pub nonce: String,
}

/// Why a link (or a secret, or a claim) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link secret has {len} bytes; at least {MIN_SECRET_BYTES} are needed")]
    WeakSecret { len: usize },
    #[error("the link claim `{field}` has {len} bytes; at most {MAX_CLAIM_BYTES} fit")]
    ClaimTooLong { field: &'static str, len: usize },
    /// Too long, truncated, not base64url, unknown version, or a bad payload structure.
    #[error("the link is malformed ({0})")]
    Malformed(&'static str),
    /// Forged, altered, or signed with another key.
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link expired at {at}")]
    Expired { at: DateTime<Utc> },
    /// Reported by the store: the link's nonce already decided.
    #[error("the link was already used")]
    AlreadyUsed,
    #[error("the link was sent to someone else")]
    OtherRecipient,
    #[error("the link is for another run, step or host")]
    OtherStep,
    #[error("the form's CSRF field does not match the link")]
    BadCsrf,
}

impl LinkError {
    /// A stable snake_case code for audit events (`link.rejected`) and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::WeakSecret { .. } => "weak_secret",
            LinkError::ClaimTooLong { .. } => "claim_too_long",
            LinkError::Malformed(_) => "malformed",
            LinkError::BadSignature => "bad_signature",
            LinkError::Expired { .. } => "expired",
            LinkError::AlreadyUsed => "already_used",
            LinkError::OtherRecipient => "other_recipient",
            LinkError::OtherStep => "other_step",
            LinkError::BadCsrf => "bad_csrf",
        }
    }
}

impl LinkClaims {
    /// Whether the link was sent to `email` (surrounding spaces and ASCII case ignored).
    pub fn check_recipient(&self, email: &str) -> Result<(), LinkError> {
        if self.recipient.trim().eq_ignore_ascii_case(email.trim()) {
            Ok(())
        } else {
            Err(LinkError::OtherRecipient)
        }
    }

    /// Whether the link is for this run, step and host (exact match; host "" for the step).
    pub fn check_target(&self, run_id: &str, step: &str, host: &str) -> Result<(), LinkError> {
        if self.run_id == run_id && self.step == step && self.host == host {
            Ok(())
        } else {
            Err(LinkError::OtherStep)
        }
    }
}

/// A fresh nonce: [`NONCE_BYTES`] bytes from `random`, as base64url (22 characters).
pub fn new_nonce(random: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; NONCE_BYTES];
    random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs and verifies link tokens with one secret. Cheap to clone; its `Debug` hides the key.
#[derive(Clone)]
pub struct LinkSigner {
    /// HMAC state keyed with the secret, cloned for each tag.
    keyed: HmacSha256,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner { key: <redacted> }")
    }
}

impl LinkSigner {
    /// A signer for `secret`, which must have at least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, LinkError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(LinkError::WeakSecret { len: secret.len() });
        }
        let keyed = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Ok(LinkSigner { keyed })
    }

    /// The token for `claims`. Fails only when a text claim is longer than [`MAX_CLAIM_BYTES`].
    pub fn sign(&self, claims: &LinkClaims) -> Result<String, LinkError> {
        Ok(self.seal(encode_payload(claims)?))
    }

    /// The claims of `token` if it is well formed, signed with this key and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<LinkClaims, LinkError> {
        let raw = decode_token(token)?;
        let (payload, tag) = raw.split_at(raw.len() - TAG_BYTES);
        if payload[0] != TOKEN_VERSION {
            return Err(LinkError::Malformed("unknown version"));
        }
        self.mac(LINK_LABEL, payload)
            .verify_slice(tag)
            .map_err(|_| LinkError::BadSignature)?;
        let claims = decode_payload(payload)?;
        if now >= claims.expires_at {
            return Err(LinkError::Expired {
                at: claims.expires_at,
            });
        }
        Ok(claims)
    }

    /// The CSRF value for the forms of the confirmation page of `link_token`.
    pub fn csrf_token(&self, link_token: &str) -> String {
        let tag = self.mac(CSRF_LABEL, link_token.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(tag.into_bytes())
    }

    /// Whether `csrf` is the CSRF value of `link_token` (constant-time comparison).
    pub fn check_csrf(&self, link_token: &str, csrf: &str) -> Result<(), LinkError> {
        let given = URL_SAFE_NO_PAD
            .decode(csrf)
            .map_err(|_| LinkError::BadCsrf)?;
        self.mac(CSRF_LABEL, link_token.as_bytes())
            .verify_slice(&given)
            .map_err(|_| LinkError::BadCsrf)
    }

    /// `payload ‖ tag`, base64url-encoded.
    fn seal(&self, mut payload: Vec<u8>) -> String {
        let tag = self.mac(LINK_LABEL, &payload).finalize().into_bytes();
        payload.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// The HMAC state over `label ‖ data`, ready to finalize or verify.
    fn mac(&self, label: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(label);
        mac.update(data);
        mac
    }
}

/// The version-1 payload of `claims` (no tag).
fn encode_payload(claims: &LinkClaims) -> Result<Vec<u8>, LinkError> {
    let mut out = Vec::with_capacity(128);
    out.push(TOKEN_VERSION);
    out.push(claims.purpose.to_byte());
    out.extend_from_slice(&claims.expires_at.timestamp().to_be_bytes());
    for (field, text) in text_claims(claims) {
        let len = u8::try_from(text.len()).map_err(|_| LinkError::ClaimTooLong {
            field,
            len: text.len(),
        })?;
        out.push(len);
        out.extend_from_slice(text.as_bytes());
    }
    Ok(out)
}

fn text_claims(claims: &LinkClaims) -> [(&'static str, &str); TEXT_CLAIMS] {
    [
        ("run_id", &claims.run_id),
        ("step", &claims.step),
        ("host", &claims.host),
        ("recipient", &claims.recipient),
        ("nonce", &claims.nonce),
    ]
}

/// The raw bytes of `token`, at least long enough to hold an empty payload and a tag.
fn decode_token(token: &str) -> Result<Vec<u8>, LinkError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(LinkError::Malformed("too long"));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkError::Malformed("not base64url"))?;
    if raw.len() < MIN_RAW_BYTES {
        return Err(LinkError::Malformed("truncated"));
    }
    Ok(raw)
}

/// The claims of a version-1 payload whose tag was already checked.
fn decode_payload(payload: &[u8]) -> Result<LinkClaims, LinkError> {
    let mut reader = Reader { rest: payload };
    reader.take(1)?; // version, checked by the caller
    let purpose =
        Purpose::from_byte(reader.take(1)?[0]).ok_or(LinkError::Malformed("unknown purpose"))?;
    let seconds = i64::from_be_bytes(reader.take(8)?.try_into().expect("8 bytes"));
    let expires_at =
        DateTime::from_timestamp(seconds, 0).ok_or(LinkError::Malformed("expiry out of range"))?;
    let claims = LinkClaims {
        run_id: reader.text()?,
        step: reader.text()?,
        host: reader.text()?,
        recipient: reader.text()?,
        purpose,
        expires_at,
        nonce: reader.text()?,
    };
    if !reader.rest.is_empty() {
        return Err(LinkError::Malformed("trailing bytes"));
    }
    Ok(claims)
}

/// Reads a payload front to back.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LinkError> {
        if self.rest.len() < n {
            return Err(LinkError::Malformed("truncated payload"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A one-byte length, then that many bytes of UTF-8.
    fn text(&mut self) -> Result<String, LinkError> {
        let len = usize::from(self.take(1)?[0]);
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LinkError::Malformed("claim is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const EMAIL: &str = "alice.cab@example.com";

    fn signer() -> LinkSigner {
        LinkSigner::new(SECRET).unwrap()
    }

    fn expiry() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 10, 17, 0, 0).unwrap()
    }

    fn before_expiry() -> DateTime<Utc> {
        expiry() - Duration::hours(48)
    }

    fn counting_random(buf: &mut [u8]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = i as u8;
        }
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            run_id: "01JFQ3Z8K2M4N6P8R0T2V4X6Z8".into(),
            step: "cab-approval".into(),
            host: String::new(),
            recipient: EMAIL.into(),
            purpose: Purpose::Approval,
            expires_at: expiry(),
            nonce: new_nonce(&mut counting_random),
        }
    }

    fn is_rejected(result: &Result<LinkClaims, LinkError>) -> bool {
        result.is_err()
    }

    #[test]
    fn round_trip_returns_every_claim() {
        let token = signer().sign(&claims()).unwrap();
        assert_eq!(signer().verify(&token, before_expiry()), Ok(claims()));
    }

    #[test]
    fn round_trip_of_a_task_link_on_a_host() {
        let task = LinkClaims {
            purpose: Purpose::Task,
            host: "web-01.example.com".into(),
            ..claims()
        };
        let token = signer().sign(&task).unwrap();
        assert_eq!(signer().verify(&token, before_expiry()), Ok(task));
    }

    #[test]
    fn token_is_url_safe() {
        let token = signer().sign(&claims()).unwrap();
        let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        assert!(token.chars().all(safe), "{token}");
    }

    #[test]
    fn expiry_is_truncated_to_whole_seconds() {
        let late = LinkClaims {
            expires_at: expiry() + Duration::milliseconds(900),
            ..claims()
        };
        let token = signer().sign(&late).unwrap();
        let back = signer().verify(&token, before_expiry()).unwrap();
        assert_eq!(back.expires_at, expiry());
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let token = signer().sign(&claims()).unwrap();
        let replacements: Vec<char> =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. %é"
                .chars()
                .collect();
        let mut tried = 0;
        for (index, original) in token.char_indices() {
            for &with in replacements.iter().filter(|&&c| c != original) {
                let mut changed = token.clone();
                changed.replace_range(index..index + 1, with.encode_utf8(&mut [0; 4]));
                let result = signer().verify(&changed, before_expiry());
                assert!(
                    is_rejected(&result),
                    "change at {index} to {with:?} accepted"
                );
                tried += 1;
            }
        }
        assert!(tried > token.len() * 60, "only {tried} changes tried");
    }

    #[test]
    fn every_bit_flip_of_the_raw_token_is_rejected() {
        let token = signer().sign(&claims()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for index in 0..raw.len() {
            for bit in 0..8 {
                let mut changed = raw.clone();
                changed[index] ^= 1 << bit;
                let result = signer().verify(&URL_SAFE_NO_PAD.encode(&changed), before_expiry());
                assert!(
                    is_rejected(&result),
                    "flip of bit {bit} of byte {index} accepted"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let token = signer().sign(&claims()).unwrap();
        for len in 0..token.len() {
            let result = signer().verify(&token[..len], before_expiry());
            assert!(is_rejected(&result), "truncation to {len} accepted");
        }
    }

    #[test]
    fn appended_characters_are_rejected() {
        let token = signer().sign(&claims()).unwrap();
        for extra in ["A", "AA", "AAAA", "=", "\n"] {
            let result = signer().verify(&format!("{token}{extra}"), before_expiry());
            assert!(is_rejected(&result), "appended {extra:?} accepted");
        }
    }

    #[test]
    fn another_key_is_a_bad_signature() {
        let other = LinkSigner::new(b"another secret of at least thirty-two bytes").unwrap();
        let token = other.sign(&claims()).unwrap();
        assert_eq!(
            signer().verify(&token, before_expiry()),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn expired_at_exactly_expires_at_and_after() {
        let token = signer().sign(&claims()).unwrap();
        let just_before = expiry() - Duration::seconds(1);
        assert!(signer().verify(&token, just_before).is_ok());
        for now in [expiry(), expiry() + Duration::seconds(1)] {
            let expired = Err(LinkError::Expired { at: expiry() });
            assert_eq!(signer().verify(&token, now), expired, "at {now}");
        }
    }

    #[test]
    fn recipient_check() {
        let claims = claims();
        assert_eq!(claims.check_recipient(EMAIL), Ok(()));
        assert_eq!(claims.check_recipient(" Alice.CAB@Example.com "), Ok(()));
        let other = claims.check_recipient("mallory@example.com");
        assert_eq!(other, Err(LinkError::OtherRecipient));
        assert_eq!(claims.check_recipient(""), Err(LinkError::OtherRecipient));
    }

    #[test]
    fn target_check() {
        let claims = claims();
        let run = claims.run_id.clone();
        assert_eq!(claims.check_target(&run, "cab-approval", ""), Ok(()));
        let wrong = [
            ("another-run", "cab-approval", ""),
            (run.as_str(), "patch-node-1", ""),
            (run.as_str(), "cab-approval", "web-01"),
        ];
        for (run_id, step, host) in wrong {
            let result = claims.check_target(run_id, step, host);
            assert_eq!(result, Err(LinkError::OtherStep), "{run_id} {step} {host}");
        }
    }

    #[test]
    fn token_holds_no_secret_and_no_clear_text_email() {
        let token = signer().sign(&claims()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert!(!token.contains(EMAIL) && !token.contains('@'), "{token}");
        for window in SECRET.windows(8) {
            assert!(!contains(&raw, window), "secret bytes in the token");
            assert!(
                !contains(token.as_bytes(), window),
                "secret text in the token"
            );
        }
        // Decision (module doc): the email is inside the payload, signed but not encrypted.
        assert!(contains(&raw, EMAIL.as_bytes()));
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn short_secrets_are_refused() {
        let short = LinkSigner::new(&[7; MIN_SECRET_BYTES - 1]).unwrap_err();
        assert_eq!(short, LinkError::WeakSecret { len: 31 });
        assert!(LinkSigner::new(&[7; MIN_SECRET_BYTES]).is_ok());
        assert!(LinkSigner::new(b"").is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", signer());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn longest_claims_fit_and_longer_are_refused() {
        let longest = LinkClaims {
            recipient: format!("{}@example.com", "a".repeat(MAX_CLAIM_BYTES - 12)),
            host: "h".repeat(MAX_CLAIM_BYTES),
            ..claims()
        };
        let token = signer().sign(&longest).unwrap();
        assert!(token.len() <= MAX_TOKEN_CHARS);
        assert_eq!(signer().verify(&token, before_expiry()), Ok(longest));
        let too_long = LinkClaims {
            step: "s".repeat(MAX_CLAIM_BYTES + 1),
            ..claims()
        };
        let refused = LinkError::ClaimTooLong {
            field: "step",
            len: 256,
        };
        assert_eq!(signer().sign(&too_long), Err(refused));
    }

    #[test]
    fn the_maximal_token_is_within_the_length_limit() {
        let big = "x".repeat(MAX_CLAIM_BYTES);
        let maximal = LinkClaims {
            run_id: big.clone(),
            step: big.clone(),
            host: big.clone(),
            recipient: big.clone(),
            nonce: big,
            ..claims()
        };
        let token = signer().sign(&maximal).unwrap();
        assert!(signer().verify(&token, before_expiry()).is_ok());
        let too_long = "A".repeat(MAX_TOKEN_CHARS + 4);
        let result = signer().verify(&too_long, before_expiry());
        assert_eq!(result, Err(LinkError::Malformed("too long")));
    }

    /// Signs `payload` as it is, to reach the checks behind the tag.
    fn sealed(payload: Vec<u8>) -> String {
        signer().seal(payload)
    }

    #[test]
    fn unknown_version_is_malformed_even_when_signed() {
        let mut payload = encode_payload(&claims()).unwrap();
        payload[0] = 2;
        let result = signer().verify(&sealed(payload), before_expiry());
        assert_eq!(result, Err(LinkError::Malformed("unknown version")));
    }

    #[test]
    fn bad_structure_is_malformed_even_when_signed() {
        let good = encode_payload(&claims()).unwrap();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_purpose = good.clone();
        bad_purpose[1] = 0;
        let mut short = good.clone();
        short.truncate(good.len() - 3);
        let mut not_utf8 = good.clone();
        let last = not_utf8.len() - 1;
        not_utf8[last] = 0xff;
        let cases = [
            (trailing, "trailing bytes"),
            (bad_purpose, "unknown purpose"),
            (short, "truncated payload"),
            (not_utf8, "claim is not UTF-8"),
        ];
        for (payload, why) in cases {
            let result = signer().verify(&sealed(payload), before_expiry());
            assert_eq!(result, Err(LinkError::Malformed(why)));
        }
    }

    #[test]
    fn plain_garbage_is_malformed() {
        for token in ["", "!!!!", "a", "====", "AAAA", "not a token", "AAAAA"] {
            let result = signer().verify(token, before_expiry());
            assert!(
                matches!(result, Err(LinkError::Malformed(_))),
                "{token:?}: {result:?}"
            );
        }
    }

    #[test]
    fn nonces_come_from_the_given_randomness() {
        let nonce = new_nonce(&mut counting_random);
        assert_eq!(nonce, "AAECAwQFBgcICQoLDA0ODw");
        let other = new_nonce(&mut |buf: &mut [u8]| buf.fill(0xab));
        assert_ne!(nonce, other);
        assert_eq!(other.len(), 22);
    }

    #[test]
    fn csrf_is_bound_to_the_token() {
        let token = signer().sign(&claims()).unwrap();
        let csrf = signer().csrf_token(&token);
        assert_eq!(signer().check_csrf(&token, &csrf), Ok(()));
        let other_token = signer()
            .sign(&LinkClaims {
                step: "x".into(),
                ..claims()
            })
            .unwrap();
        assert_eq!(
            signer().check_csrf(&other_token, &csrf),
            Err(LinkError::BadCsrf)
        );
        for bad in [
            "",
            "x",
            &csrf[1..],
            &format!("{csrf}A"),
            &csrf.replace('A', "B"),
        ] {
            if bad != csrf {
                assert_eq!(
                    signer().check_csrf(&token, bad),
                    Err(LinkError::BadCsrf),
                    "{bad}"
                );
            }
        }
        assert_ne!(csrf, token, "the CSRF value is not the token");
    }

    #[test]
    fn error_codes_are_distinct() {
        let errors = [
            LinkError::WeakSecret { len: 0 },
            LinkError::ClaimTooLong {
                field: "step",
                len: 0,
            },
            LinkError::Malformed("x"),
            LinkError::BadSignature,
            LinkError::Expired { at: expiry() },
            LinkError::AlreadyUsed,
            LinkError::OtherRecipient,
            LinkError::OtherStep,
            LinkError::BadCsrf,
        ];
        let codes: std::collections::HashSet<_> = errors.iter().map(LinkError::code).collect();
        assert_eq!(codes.len(), errors.len());
    }

    proptest! {
        #[test]
        fn random_strings_never_verify(token in any::<String>()) {
            prop_assert!(signer().verify(&token, before_expiry()).is_err());
        }

        #[test]
        fn random_base64url_never_verifies(token in "[A-Za-z0-9_-]{0,400}") {
            prop_assert!(signer().verify(&token, before_expiry()).is_err());
        }

        #[test]
        fn random_bytes_never_verify(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let token = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(signer().verify(&token, before_expiry()).is_err());
        }

        #[test]
        fn any_claims_round_trip(
            run_id in ".{0,40}", step in "[a-z0-9-]{1,40}", host in "[a-z0-9.-]{0,60}",
            recipient in "[a-z.]{1,20}@[a-z]{1,20}\\.[a-z]{2,6}", task in any::<bool>(),
            seconds in 0i64..4_000_000_000,
        ) {
            let claims = LinkClaims {
                run_id, step, host, recipient,
                purpose: if task { Purpose::Task } else { Purpose::Approval },
                expires_at: DateTime::from_timestamp(seconds, 0).unwrap(),
                nonce: new_nonce(&mut counting_random),
            };
            let token = signer().sign(&claims).unwrap();
            let now = claims.expires_at - Duration::seconds(1);
            prop_assert_eq!(signer().verify(&token, now), Ok(claims));
        }
    }
}
