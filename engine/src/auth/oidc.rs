//! Single sign-on with OpenID Connect (`[auth.oidc]`): the authorization code flow with PKCE
//! against any provider's discovery document (Entra ID, Okta, Keycloak, Google), through the
//! `openidconnect` crate, which checks the ID token (signature with the provider's keys, issuer,
//! audience, expiry, nonce).
//!
//! [`Oidc::start`] makes a random `state`, PKCE verifier and nonce, keeps them here under the
//! state for [`PENDING_TTL`], and returns the provider's authorization URL; the HTTP layer also
//! puts the state in a short-lived cookie, so only the browser that started a sign-in can end
//! it. [`Oidc::finish`] takes the pending entry out (a state, and so a code, works once),
//! exchanges the code with the verifier and the client secret, verifies the ID token and reads
//! the person's address (`email_claim`, default `email`) and groups (`groups_claim`, default
//! `groups`) from its claims. Discovery happens at the first sign-in and is kept; a failed one is
//! tried again at the next.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};

/// How long a started sign-in may take at the provider.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Started sign-ins kept at most (older ones are dropped first).
const MAX_PENDING: usize = 10_000;

/// `[auth.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL; its `/.well-known/openid-configuration` is the discovery document.
    pub issuer: String,
    pub client_id: String,
    /// The file holding the client secret (read at start, never logged).
    pub client_secret_file: PathBuf,
    /// Scopes asked for besides `openid` (default `email`, `profile`).
    pub scopes: Vec<String>,
    /// The ID token claim holding the address (default `email`).
    pub email_claim: String,
    /// The ID token claim holding the groups (default `groups`).
    pub groups_claim: String,
}

/// Why a single sign-on did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider's discovery document: {0}")]
    Discovery(String),
    #[error("the sign-in was not started here, took too long, or was already finished")]
    UnknownState,
    #[error("the identity provider refused: {0}")]
    Provider(String),
    #[error("exchanging the code: {0}")]
    Exchange(String),
    #[error("the ID token: {0}")]
    IdToken(String),
    #[error("the ID token is for another client: {0}")]
    WrongAudience(String),
    #[error("the ID token has expired: {0}")]
    ExpiredIdToken(String),
    #[error("the ID token has no address in `{0}`")]
    NoEmail(String),
    #[error("{0}")]
    Config(String),
}

impl OidcError {
    /// The reason code in `auth.refused` events.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Discovery(_) => "oidc_discovery",
            OidcError::UnknownState => "oidc_bad_state",
            OidcError::Provider(_) => "oidc_provider_error",
            OidcError::Exchange(_) => "oidc_exchange",
            OidcError::IdToken(_) => "oidc_bad_id_token",
            OidcError::WrongAudience(_) => "oidc_wrong_audience",
            OidcError::ExpiredIdToken(_) => "oidc_expired_id_token",
            OidcError::NoEmail(_) => "oidc_no_email",
            OidcError::Config(_) => "oidc_config",
        }
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Lower case.
    pub email: String,
    pub groups: Vec<String>,
}

/// A sign-in started: where to send the browser, and the state to keep in its cookie.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: String,
    pub state: String,
}

struct Pending {
    verifier: String,
    nonce: String,
    at: Instant,
}

/// The OIDC client of a daemon.
pub struct Oidc {
    config: OidcConfig,
    secret: String,
    redirect: RedirectUrl,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::OnceCell<CoreProviderMetadata>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// A client for `config` with the client `secret`, redirected back to `redirect`
    /// (`<public URL>/signin/oidc/callback`).
    pub fn new(config: OidcConfig, secret: String, redirect: &str) -> Result<Oidc, OidcError> {
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| OidcError::Config(format!("redirect URL `{redirect}`: {e}")))?;
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(Oidc {
            config,
            secret,
            redirect,
            http,
            metadata: tokio::sync::OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    async fn client(
        &self,
    ) -> Result<
        openidconnect::core::CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let metadata = self
            .metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.config.issuer.clone())
                    .map_err(|e| OidcError::Discovery(e.to_string()))?;
                CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Discovery(error_chain(&e)))
            })
            .await?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.clone())),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// Starts a sign-in: the provider's authorization URL and the state.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.at.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(OidcError::Config("too many sign-ins under way".into()));
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
                at: Instant::now(),
            },
        );
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
        })
    }

    /// Ends the sign-in `state` with the provider's `code`: who signed in.
    pub async fn finish(&self, state: &str, code: &str) -> Result<Identity, OidcError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|p| p.at.elapsed() < PENDING_TTL)
            .ok_or(OidcError::UnknownState)?;
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the provider sent none".into()))?;
        id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(id_token_error)?;
        // Verified above: read the configured claims from its payload.
        let claims = payload(&id_token.to_string())?;
        let email = claims
            .get(&self.config.email_claim)
            .and_then(|v| v.as_str())
            .and_then(super::normalize_email)
            .ok_or_else(|| OidcError::NoEmail(self.config.email_claim.clone()))?;
        let groups = match claims.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity { email, groups })
    }
}

/// Why the ID token was refused: a wrong audience and an expired token by name.
fn id_token_error(e: ClaimsVerificationError) -> OidcError {
    let text = error_chain(&e);
    match e {
        ClaimsVerificationError::InvalidAudience(_) => OidcError::WrongAudience(text),
        ClaimsVerificationError::Expired(_) => OidcError::ExpiredIdToken(text),
        _ => OidcError::IdToken(text),
    }
}

/// The claims of a JWT's payload (already verified).
fn payload(jwt: &str) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::IdToken("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| OidcError::IdToken(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| OidcError::IdToken(e.to_string()))
}

/// An error with its sources, `: `-joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
