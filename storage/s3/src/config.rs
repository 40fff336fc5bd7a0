//! What the S3 backend needs to know: where the bucket is and how to sign requests.

use std::fmt;
use std::time::Duration;

use dure_storage::StoreError;

/// A secret string (secret access key, session token). Its `Debug` never shows the value, so
/// a config printed in a log or an error stays harmless.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for handing to the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// How requests are signed.
#[derive(Clone, PartialEq, Eq)]
pub enum S3Credentials {
    /// Keys given in Dure's own configuration (settings `s3_access_key_id`,
    /// `s3_secret_access_key`, optionally `s3_session_token`).
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// The standard AWS credential chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the
    /// shared config/credentials files (`AWS_PROFILE`, `credential_process`), web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as set for Kubernetes service accounts),
    /// ECS/EKS pod identity, and the EC2 instance metadata service. (SSO profiles are not
    /// supported.)
    Chain,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Credentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => f
                .debug_struct("Static")
                .field("access_key_id", &MaskedId(access_key_id))
                .field("secret_access_key", secret_access_key)
                .field("session_token", session_token)
                .finish(),
            S3Credentials::Chain => f.write_str("Chain"),
        }
    }
}

/// Shows an access key id the way the AWS CLI does: only its last four characters.
struct MaskedId<'a>(&'a str);

impl fmt::Debug for MaskedId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        write!(f, "\"****{tail}\"")
    }
}

/// Where and how to store objects on an S3-compatible service.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Setting `s3_bucket`. Must exist: Dure never creates buckets.
    pub bucket: String,
    /// Setting `s3_prefix`: a key prefix inside the bucket (`dure/prod` stores
    /// `docs/x/log/…` as `dure/prod/docs/x/log/…`), so one bucket can hold several
    /// deployments. Leading and trailing `/` are ignored.
    pub prefix: Option<String>,
    /// Setting `s3_region`. S3-compatible stores mostly accept any; `us-east-1` is the usual.
    pub region: String,
    /// Setting `s3_endpoint`: an `http://` or `https://` URL for a non-AWS service (MinIO,
    /// Ceph RGW, Garage). `None` means AWS S3 in `region`.
    pub endpoint: Option<String>,
    /// Setting `s3_path_style`: address the bucket as `endpoint/bucket/key` instead of
    /// `bucket.endpoint/key`. Most self-hosted services need it.
    pub path_style: bool,
    pub credentials: S3Credentials,
    /// Setting `s3_request_timeout`: the longest one S3 request may take, the SDK's own retry
    /// included. A server that stops answering turns into [`StoreError::Unavailable`] after
    /// this long, never into a hang.
    pub request_timeout: Duration,
}

impl S3Config {
    /// The default request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

    /// A config for `bucket` on AWS S3 in `us-east-1`, signed with the AWS credential chain.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: None,
            region: "us-east-1".to_owned(),
            endpoint: None,
            path_style: false,
            credentials: S3Credentials::Chain,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Checks what can be checked without the network; each error names the setting.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bucket = &self.bucket;
        // Wider than AWS's current rules (3-63 of a-z0-9.-): old buckets and other services
        // allow more, and the service itself has the last word.
        let bucket_ok = (3..=255).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !bucket_ok {
            return Err(StoreError::Misconfigured(format!(
                "bucket name {bucket:?} is not valid: at least 3 characters of a-z, 0-9, '.', '-' (setting s3_bucket (--s3-bucket, DURE_S3_BUCKET))"
            )));
        }
        if self.region.trim().is_empty() {
            return Err(StoreError::Misconfigured(
                "the region is empty (setting s3_region (--s3-region, DURE_S3_REGION); use us-east-1 for most S3-compatible services)".into(),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(StoreError::Misconfigured(format!(
                "endpoint {:?} is not an http:// or https:// URL (setting s3_endpoint (--s3-endpoint, DURE_S3_ENDPOINT))",
                redact_userinfo(endpoint)
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(StoreError::Misconfigured(
                "the request timeout is zero (setting s3_request_timeout (--s3-request-timeout, DURE_S3_REQUEST_TIMEOUT))".into(),
            ));
        }
        if let Some(prefix) = self.normalized_prefix() {
            let segments_ok = prefix
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..");
            if !segments_ok {
                return Err(StoreError::Misconfigured(format!(
                    "key prefix {prefix:?} has an empty or relative segment (setting s3_prefix (--s3-prefix, DURE_S3_PREFIX))"
                )));
            }
        }
        if let S3Credentials::Static {
            access_key_id,
            secret_access_key,
            ..
        } = &self.credentials
            && (access_key_id.is_empty() || secret_access_key.expose().is_empty())
        {
            return Err(StoreError::Misconfigured(
                "static credentials need both s3_access_key_id (--s3-access-key-id, DURE_S3_ACCESS_KEY_ID) and s3_secret_access_key (--s3-secret-access-key, DURE_S3_SECRET_ACCESS_KEY)".into(),
            ));
        }
        Ok(())
    }

    /// The prefix without surrounding slashes, `None` when empty.
    pub(crate) fn normalized_prefix(&self) -> Option<String> {
        let p = self.prefix.as_deref()?.trim_matches('/');
        (!p.is_empty()).then(|| p.to_owned())
    }

    /// Where requests go, for messages: the endpoint without any user-info, or AWS's region.
    pub(crate) fn endpoint_label(&self) -> String {
        match &self.endpoint {
            Some(e) => redact_userinfo(e),
            None => format!("aws:{}", self.region),
        }
    }
}

/// Drops a `user:password@` part from a URL so it can be shown.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let cfg = S3Config {
            credentials: S3Credentials::Static {
                access_key_id: "AKIAEXAMPLEKEY1234".into(),
                secret_access_key: "very-secret-value".into(),
                session_token: Some("session-token-value".into()),
            },
            ..S3Config::new("bucket")
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("session-token-value"), "{shown}");
        assert!(!shown.contains("AKIAEXAMPLEKEY"), "{shown}");
        assert!(shown.contains("****1234"), "{shown}");
    }

    #[test]
    fn userinfo_is_dropped_from_endpoints() {
        assert_eq!(
            redact_userinfo("http://user:pw@host:9000/x@y"),
            "http://host:9000/x@y"
        );
        assert_eq!(redact_userinfo("https://host"), "https://host");
    }

    #[test]
    fn validation_names_the_setting() {
        let bad = |cfg: S3Config, setting: &str| match cfg.validate() {
            Err(StoreError::Misconfigured(m)) => assert!(m.contains(setting), "{m}"),
            other => panic!("expected Misconfigured naming {setting}, got {other:?}"),
        };
        bad(S3Config::new("ab"), "s3_bucket");
        bad(S3Config::new("a/b"), "s3_bucket");
        bad(
            S3Config {
                endpoint: Some("localhost:9000".into()),
                ..S3Config::new("bucket")
            },
            "s3_endpoint",
        );
        bad(
            S3Config {
                prefix: Some("a//b".into()),
                ..S3Config::new("bucket")
            },
            "s3_prefix",
        );
        bad(
            S3Config {
                request_timeout: Duration::ZERO,
                ..S3Config::new("bucket")
            },
            "s3_request_timeout",
        );
        assert!(
            S3Config {
                prefix: Some("/a/b/".into()),
                ..S3Config::new("bucket")
            }
            .validate()
            .is_ok()
        );
    }
}
