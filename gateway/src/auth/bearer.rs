//! Bearer access tokens (RFC 9068 JWTs) for the API and non-browser clients: signature by a
//! key of the issuer's JWKS, algorithm from configuration only, `iss`, `aud`, `exp`, `nbf`.
//! ID tokens are refused even when their audience would match: by default a bearer token
//! must be typed `at+jwt` (RFC 9068 §2.1), which an ID token never is; a token meant only
//! for the client id (an ID token's audience) counts only when the operator chose the client
//! id as the API audience; and without the type check (`oidc_bearer_require_at_jwt = false`)
//! no token naming the client id in its audience is taken.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::identity::Identity;
use super::jwks::Jwks;

/// Clock skew tolerated between Dure and the provider.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BearerError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token issued by another issuer")]
    Issuer,
    #[error("token meant for another audience")]
    Audience,
    #[error("an ID token is not an access token")]
    IdToken,
    #[error("not an access token: its header must say typ at+jwt (RFC 9068), got {0}")]
    NotAtJwt(String),
    #[error(
        "token meant only for this server's sign-in client (the audience of an ID token); bearer tokens need the API audience (setting `oidc_audience`)"
    )]
    ClientAudience,
    #[error("token invalid: {0}")]
    Invalid(String),
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Identity,
    pub expires_at: SystemTime,
}

#[derive(Debug)]
pub struct BearerVerifier {
    pub issuer: String,
    pub audience: String,
    /// See [`crate::config::OidcConfig::audience_explicit`].
    pub audience_explicit: bool,
    pub client_id: String,
    pub require_at_jwt: bool,
    pub algorithms: Vec<Algorithm>,
    pub groups_claim: String,
    pub admin_group: Option<String>,
}

impl BearerVerifier {
    pub async fn verify(&self, token: &str, jwks: &Jwks) -> Result<Verified, BearerError> {
        // The header is read only to pick the key; the algorithm must be one we configured,
        // and the key's own type must agree (checked by jsonwebtoken).
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                BearerError::Algorithm(alg_of(token))
            }
            _ => BearerError::Malformed,
        })?;
        if !self.algorithms.contains(&header.alg) {
            return Err(BearerError::Algorithm(format!("{:?}", header.alg)));
        }
        if self.require_at_jwt && !header.typ.as_deref().is_some_and(is_at_jwt) {
            return Err(BearerError::NotAtJwt(
                header
                    .typ
                    .as_deref()
                    .unwrap_or("none")
                    .chars()
                    .take(40)
                    .collect(),
            ));
        }
        let keys = jwks.current().await;
        let key = match pick(&keys.jwt, header.kid.as_deref()) {
            Some(k) => k,
            None => {
                // Rotation: the provider may have published a new key since we fetched.
                let keys = jwks.refetch().await;
                pick(&keys.jwt, header.kid.as_deref()).ok_or(BearerError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => BearerError::Signature,
                    K::ExpiredSignature => BearerError::Expired,
                    K::ImmatureSignature => BearerError::NotYetValid,
                    K::InvalidIssuer => BearerError::Issuer,
                    K::InvalidAudience => BearerError::Audience,
                    K::InvalidAlgorithm => BearerError::Algorithm(format!("{:?}", header.alg)),
                    other => BearerError::Invalid(format!("{other:?}")),
                }
            })?;
        let claims = data.claims;
        // ID tokens carry a nonce or hashes of the code/access token; access tokens never do.
        // RFC 9068 also types access tokens `at+jwt`; a token typed otherwise with ID-token
        // claims is refused.
        if ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|c| claims.contains_key(*c))
        {
            return Err(BearerError::IdToken);
        }
        if let Some(typ) = header.typ.as_deref()
            && typ.eq_ignore_ascii_case("id+jwt")
        {
            return Err(BearerError::IdToken);
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let names_client = audiences.iter().any(|a| *a == self.client_id);
        let only_client = names_client && audiences.iter().all(|a| *a == self.client_id);
        if (only_client && !self.audience_explicit) || (names_client && !self.require_at_jwt) {
            return Err(BearerError::ClientAudience);
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BearerError::Invalid("no subject".into()))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| BearerError::Invalid("no expiry".into()))?;
        let identity = Identity::from_claims(
            sub,
            &claims,
            &self.groups_claim,
            self.admin_group.as_deref(),
        );
        Ok(Verified {
            identity,
            expires_at: UNIX_EPOCH + Duration::from_secs(exp),
        })
    }
}

/// `at+jwt`, or its full media type `application/at+jwt` (RFC 9068 §4), any case.
fn is_at_jwt(typ: &str) -> bool {
    let t = typ.trim().to_ascii_lowercase();
    t == "at+jwt" || t == "application/at+jwt"
}

fn pick(set: &jsonwebtoken::jwk::JwkSet, kid: Option<&str>) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        // Without a key id, only an unambiguous set will do.
        None if set.keys.len() == 1 => set.keys.first()?,
        None => return None,
    };
    DecodingKey::from_jwk(jwk).ok()
}

/// The `alg` a token claims, for the error message when jsonwebtoken cannot even name it
/// (`none`).
fn alg_of(token: &str) -> String {
    use base64::Engine;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("alg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::is_at_jwt;

    #[test]
    fn access_token_types() {
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            assert!(is_at_jwt(ok), "{ok}");
        }
        for bad in [
            "JWT",
            "jwt",
            "id+jwt",
            "application/jwt",
            "at+jwt+x",
            "",
            "applicati",
        ] {
            assert!(!is_at_jwt(bad), "{bad}");
        }
    }
}
