//! Turning SDK errors into [`StoreError`]s.
//!
//! The rule: what may pass by itself (throttling, 5xx, timeouts, connection failures) is
//! `Unavailable`, which the room's persistence worker retries with backoff; what needs a
//! person (missing bucket, refused credentials, wrong region, a service without conditional
//! writes) is `Misconfigured`, with a message that names the setting to fix. Messages carry
//! the service's error code and message, never credentials.

use std::error::Error as StdError;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use dure_storage::StoreError;

/// What the backend needs to tell apart; everything else is already a [`StoreError`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// 404 for a key (`NoSuchKey`, or a bodiless 404 from HEAD/GET).
    NotFound,
    /// 412: a conditional write lost.
    PreconditionFailed,
    /// 409 `ConditionalRequestConflict`: a concurrent operation on the key interfered with a
    /// conditional write. AWS says to retry; the retry then succeeds or gets a 412.
    Conflict,
    Store(StoreError),
}

/// Context for messages: which bucket, which endpoint, which operation.
pub(crate) struct Ctx<'a> {
    pub bucket: &'a str,
    pub endpoint: &'a str,
    pub region: &'a str,
    pub timeout: Duration,
    pub op: &'static str,
}

impl Ctx<'_> {
    pub(crate) fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "S3 at {} did not answer {} within {:?} (check that the service is up and that setting s3_endpoint (--s3-endpoint, DURE_S3_ENDPOINT) points at it)",
            self.endpoint, self.op, self.timeout
        ))
    }

    pub(crate) fn misconfigured_bucket_missing(&self) -> StoreError {
        StoreError::Misconfigured(format!(
            "bucket \"{}\" does not exist (setting s3_bucket (--s3-bucket, DURE_S3_BUCKET)) at {}",
            self.bucket, self.endpoint
        ))
    }
}

/// Classifies an SDK error.
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>, ctx: &Ctx<'_>) -> Failure
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(ref service) => {
            let status = service.raw().status().as_u16();
            let region_hint = service
                .raw()
                .headers()
                .get("x-amz-bucket-region")
                .map(str::to_owned);
            let e = service.err();
            classify_response(status, e.code(), e.message(), region_hint.as_deref(), ctx)
        }
        SdkError::TimeoutError(_) => Failure::Store(ctx.timed_out()),
        SdkError::DispatchFailure(ref d) => {
            if let Some(c) = find_credentials_error(&err) {
                return Failure::Store(credentials_chain_error(c));
            }
            let what = if d.is_timeout() {
                "timed out"
            } else if d.is_io() {
                "could not connect or the connection broke"
            } else {
                "failed"
            };
            Failure::Store(StoreError::Unavailable(format!(
                "request {} to S3 at {} {what} (check setting s3_endpoint (--s3-endpoint, DURE_S3_ENDPOINT) and the network): {}",
                ctx.op,
                ctx.endpoint,
                chain(&err)
            )))
        }
        SdkError::ResponseError(ref r) => {
            let status = r.raw().status().as_u16();
            Failure::Store(StoreError::Unavailable(format!(
                "S3 at {} sent an unreadable answer to {} (HTTP {status}): {}",
                ctx.endpoint,
                ctx.op,
                chain(&err)
            )))
        }
        SdkError::ConstructionFailure(_) => {
            if let Some(c) = find_credentials_error(&err) {
                return Failure::Store(credentials_chain_error(c));
            }
            Failure::Store(StoreError::Misconfigured(format!(
                "could not build the S3 request {} (check the s3.* settings): {}",
                ctx.op,
                chain(&err)
            )))
        }
        // SdkError is non-exhaustive.
        _ => Failure::Store(StoreError::Unavailable(format!(
            "S3 request {} failed: {}",
            ctx.op,
            chain(&err)
        ))),
    }
}

/// Classifies an error answer by status and S3 error code. Bodiless answers (HEAD) have no
/// code, so the status decides alone.
pub(crate) fn classify_response(
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    region_hint: Option<&str>,
    ctx: &Ctx<'_>,
) -> Failure {
    let detail = match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => format!("HTTP {status}"),
    };
    let code = code.unwrap_or("");
    let unavailable = |what: &str| {
        Failure::Store(StoreError::Unavailable(format!(
            "{what} on {} at {} ({detail}, HTTP {status})",
            ctx.op, ctx.endpoint
        )))
    };
    let misconfigured = |msg: String| Failure::Store(StoreError::Misconfigured(msg));
    match (status, code) {
        (412, _) | (_, "PreconditionFailed") => Failure::PreconditionFailed,
        (409, "ConditionalRequestConflict") => Failure::Conflict,
        (_, "NoSuchBucket") => Failure::Store(ctx.misconfigured_bucket_missing()),
        (_, "NoSuchKey") => Failure::NotFound,
        (404, "") | (404, "NotFound") => Failure::NotFound,
        (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        | (429, _) => unavailable("S3 is throttling requests"),
        (
            _,
            "RequestTimeout" | "RequestTimeoutException" | "InternalError" | "ServiceUnavailable",
        ) => unavailable("S3 could not serve the request"),
        (_, "RequestTimeTooSkewed") => misconfigured(format!(
            "S3 at {} refused the request because this machine's clock is off by more than 15 minutes ({detail}): fix the system clock",
            ctx.endpoint
        )),
        (403, _)
        | (
            _,
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired",
        ) => misconfigured(format!(
            "S3 at {} refused the credentials for bucket \"{}\" on {} ({detail}): check settings s3_access_key_id (--s3-access-key-id, DURE_S3_ACCESS_KEY_ID) / s3_secret_access_key (--s3-secret-access-key, DURE_S3_SECRET_ACCESS_KEY) (or the AWS credential chain when they are unset) and the bucket's permissions",
            ctx.endpoint, ctx.bucket, ctx.op
        )),
        (301 | 307, _)
        | (
            _,
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => {
            let actual = region_hint
                .map(|r| format!("; the bucket is in {r:?}"))
                .unwrap_or_default();
            misconfigured(format!(
                "bucket \"{}\" is not reachable with region {:?} at {} ({detail}{actual}): check settings s3_region (--s3-region, DURE_S3_REGION) and s3_endpoint (--s3-endpoint, DURE_S3_ENDPOINT)",
                ctx.bucket, ctx.region, ctx.endpoint
            ))
        }
        (501, _) | (_, "NotImplemented") => misconfigured(format!(
            "the S3 service at {} does not implement what {} needs ({detail}): Dure needs a service with conditional writes (If-None-Match: * and If-Match on PutObject)",
            ctx.endpoint, ctx.op
        )),
        // The upload was aborted meanwhile (a lifecycle rule, another process): redo it.
        (_, "NoSuchUpload") => unavailable("the multipart upload vanished"),
        // OperationAborted and other conflicts: "a conflicting operation is in progress".
        (409, _) => unavailable("S3 reported a conflicting operation"),
        (500..=599, _) => unavailable("S3 server error"),
        (400, _) => misconfigured(format!(
            "S3 at {} rejected {} as invalid ({detail}): check settings s3_region (--s3-region, DURE_S3_REGION), s3_endpoint (--s3-endpoint, DURE_S3_ENDPOINT) and s3_path_style (--s3-path-style, DURE_S3_PATH_STYLE)",
            ctx.endpoint, ctx.op
        )),
        _ => misconfigured(format!(
            "S3 at {} refused {} ({detail}, HTTP {status})",
            ctx.endpoint, ctx.op
        )),
    }
}

/// An error and its causes, as `a: b: c` (each cause's Display, repeats dropped).
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn find_credentials_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cur = e.source();
    }
    None
}

fn credentials_chain_error(err: &CredentialsError) -> StoreError {
    let text = chain(err);
    match err {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            StoreError::Misconfigured(format!(
                "no usable S3 credentials: set s3_access_key_id (--s3-access-key-id, DURE_S3_ACCESS_KEY_ID) and s3_secret_access_key (--s3-secret-access-key, DURE_S3_SECRET_ACCESS_KEY), or configure the AWS credential chain (environment, profile, web identity): {text}"
            ))
        }
        _ => StoreError::Unavailable(format!(
            "loading S3 credentials from the AWS credential chain failed: {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            bucket: "b",
            endpoint: "http://127.0.0.1:9",
            region: "us-east-1",
            timeout: Duration::from_secs(1),
            op: "PutObject",
        }
    }

    fn store(f: Failure) -> StoreError {
        match f {
            Failure::Store(e) => e,
            other => panic!("expected a StoreError, got {other:?}"),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for (status, code) in [
            (503, Some("SlowDown")),
            (429, None),
            (500, Some("InternalError")),
            (502, None),
            (400, Some("RequestTimeout")),
            (409, Some("OperationAborted")),
            (404, Some("NoSuchUpload")),
        ] {
            let e = store(classify_response(status, code, None, None, &ctx()));
            assert!(e.is_retryable(), "{status} {code:?}: {e}");
        }
    }

    #[test]
    fn setup_problems_name_the_setting() {
        let e = store(classify_response(
            403,
            Some("InvalidAccessKeyId"),
            None,
            None,
            &ctx(),
        ));
        assert!(
            matches!(&e, StoreError::Misconfigured(m) if m.contains("refused the credentials") && m.contains("s3_secret_access_key")),
            "{e}"
        );
        let e = store(classify_response(
            404,
            Some("NoSuchBucket"),
            None,
            None,
            &ctx(),
        ));
        assert!(
            matches!(&e, StoreError::Misconfigured(m) if m.contains("bucket \"b\" does not exist (setting s3_bucket (--s3-bucket, DURE_S3_BUCKET))")),
            "{e}"
        );
        let e = store(classify_response(
            301,
            None,
            None,
            Some("eu-west-1"),
            &ctx(),
        ));
        assert!(
            matches!(&e, StoreError::Misconfigured(m) if m.contains("s3_region") && m.contains("eu-west-1")),
            "{e}"
        );
        let e = store(classify_response(
            501,
            Some("NotImplemented"),
            None,
            None,
            &ctx(),
        ));
        assert!(
            matches!(&e, StoreError::Misconfigured(m) if m.contains("conditional writes")),
            "{e}"
        );
    }

    #[test]
    fn conditions_and_missing_keys_are_told_apart() {
        assert!(matches!(
            classify_response(412, Some("PreconditionFailed"), None, None, &ctx()),
            Failure::PreconditionFailed
        ));
        assert!(matches!(
            classify_response(409, Some("ConditionalRequestConflict"), None, None, &ctx()),
            Failure::Conflict
        ));
        assert!(matches!(
            classify_response(404, Some("NoSuchKey"), None, None, &ctx()),
            Failure::NotFound
        ));
        assert!(matches!(
            classify_response(404, None, None, None, &ctx()),
            Failure::NotFound
        ));
    }
}
