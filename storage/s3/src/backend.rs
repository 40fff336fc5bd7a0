//! The S3 backend: [`dure_storage::Backend`] over the AWS SDK.
//!
//! Conditional puts map to S3's conditional writes (`If-None-Match: *`, `If-Match: <etag>`),
//! which the service evaluates atomically; an object's version is its ETag. Bodies above
//! [`MULTIPART_THRESHOLD`] go up in parts, with the condition on the completing request.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;
use dure_storage::{Backend, Key, ListEntry, Object, PutCondition, StoreError, Version};

use crate::config::{S3Config, S3Credentials};
use crate::error::{Ctx, Failure, classify};

/// Bodies larger than this are uploaded with a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// The size of each part of a multipart upload but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Attempts the SDK makes per request. Kept small: the room's persistence worker retries
/// with backoff itself, and a request must end within the request timeout either way.
const MAX_ATTEMPTS: u32 = 2;

/// The longest the SDK may take to open a connection (within the request timeout).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a conditional put is retried after `409 ConditionalRequestConflict` (a concurrent
/// operation on the key interfered; the retry succeeds or gets a definite 412).
const CONFLICT_RETRIES: u32 = 3;

/// Keys per DeleteObjects request (the most S3 accepts).
pub const DELETE_BATCH: usize = 1000;

/// A bucket (and optional key prefix) on an S3-compatible service.
pub struct S3Backend {
    client: Client,
    bucket: String,
    /// The configured prefix with a trailing `/`, or empty.
    key_prefix: String,
    endpoint_label: String,
    region: String,
    request_timeout: Duration,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Backend({})", self.describe())
    }
}

impl S3Backend {
    /// Builds the client and checks that the bucket answers (HeadBucket). Fails with
    /// [`StoreError::Misconfigured`] naming the setting to fix when the bucket is missing,
    /// the credentials are refused or the region is wrong, and with
    /// [`StoreError::Unavailable`] when the endpoint cannot be reached in time.
    pub async fn connect(cfg: S3Config) -> Result<S3Backend, StoreError> {
        cfg.validate()?;
        let timeout = cfg.request_timeout;
        let region = Region::new(cfg.region.clone());
        let mut builder = aws_sdk_s3::config::Builder::new()
            // Pinned so that an SDK upgrade cannot change retries or timeouts behind our back.
            .behavior_version(BehaviorVersion::v2026_01_12())
            .region(region.clone())
            .force_path_style(cfg.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
                    // Room for one retry on a fresh connection if the first attempt hangs.
                    .operation_attempt_timeout(timeout / MAX_ATTEMPTS)
                    .operation_timeout(timeout)
                    .build(),
            );
        if let Some(endpoint) = &cfg.endpoint {
            // S3-compatible services vary in their support of the newer default checksums
            // (aws-chunked trailers); only send and check them when an operation requires it.
            builder = builder
                .endpoint_url(endpoint.clone())
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        builder = match &cfg.credentials {
            S3Credentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => builder.credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.expose().to_owned(),
                session_token.as_ref().map(|t| t.expose().to_owned()),
                None,
                "dure-config",
            )),
            S3Credentials::Chain => builder.credentials_provider(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(region)
                    .build()
                    .await,
            ),
        };
        let key_prefix = cfg
            .normalized_prefix()
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        let backend = S3Backend {
            client: Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
            key_prefix,
            endpoint_label: cfg.endpoint_label(),
            region: cfg.region.clone(),
            request_timeout: timeout,
        };
        backend.head_bucket().await?;
        Ok(backend)
    }

    fn ctx(&self, op: &'static str) -> Ctx<'_> {
        Ctx {
            bucket: &self.bucket,
            endpoint: &self.endpoint_label,
            region: &self.region,
            timeout: self.request_timeout,
            op,
        }
    }

    fn object_key(&self, key: &Key) -> String {
        format!("{}{}", self.key_prefix, key.as_str())
    }

    /// Runs one S3 request (body included) within the request timeout: the SDK's own
    /// timeouts cover connecting and each attempt, this also covers reading a body.
    async fn bounded<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.request_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Store(self.ctx(op).timed_out())),
        }
    }

    async fn head_bucket(&self) -> Result<(), StoreError> {
        let op = "HeadBucket";
        let result = self
            .bounded(op, async {
                self.client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // HEAD answers have no body: a bare 404 here means the bucket.
            Err(Failure::NotFound) => Err(self.ctx(op).misconfigured_bucket_missing()),
            Err(f) => Err(self.unexpected(op, f)),
        }
    }

    /// A failure that the operation has no special meaning for.
    fn unexpected(&self, op: &'static str, failure: Failure) -> StoreError {
        match failure {
            Failure::Store(e) => e,
            Failure::NotFound => StoreError::Unavailable(format!(
                "S3 at {} answered {op} with an unexpected 404",
                self.endpoint_label
            )),
            Failure::PreconditionFailed | Failure::Conflict => StoreError::Unavailable(format!(
                "S3 at {} answered {op} with an unexpected precondition failure",
                self.endpoint_label
            )),
        }
    }

    fn version(&self, op: &'static str, etag: Option<&str>) -> Result<Version, StoreError> {
        match etag {
            Some(e) if !e.is_empty() => Ok(Version(e.to_owned())),
            _ => Err(StoreError::Misconfigured(format!(
                "S3 at {} answered {op} without an ETag; Dure needs ETags for conditional writes",
                self.endpoint_label
            ))),
        }
    }

    fn condition_failed(key: &Key) -> StoreError {
        StoreError::ConditionFailed {
            key: key.to_string(),
        }
    }

    /// What a put's failure means, given its condition.
    fn put_failure(&self, key: &Key, cond: &PutCondition, failure: Failure) -> StoreError {
        match (failure, cond) {
            (Failure::PreconditionFailed, _) => Self::condition_failed(key),
            // If-Match on a missing object: AWS answers 404 NoSuchKey.
            (Failure::NotFound, PutCondition::IfMatch(_)) => Self::condition_failed(key),
            (f, _) => self.unexpected("PutObject", f),
        }
    }

    async fn put_single(
        &self,
        key: &Key,
        data: Bytes,
        cond: &PutCondition,
    ) -> Result<Version, Failure> {
        let op = "PutObject";
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_length(len)
            .body(ByteStream::from(data));
        req = match cond {
            PutCondition::None => req,
            PutCondition::IfAbsent => req.if_none_match("*"),
            PutCondition::IfMatch(v) => req.if_match(v.0.clone()),
        };
        let out = self
            .bounded(op, async {
                req.send().await.map_err(|e| classify(e, &self.ctx(op)))
            })
            .await?;
        self.version(op, out.e_tag()).map_err(Failure::Store)
    }

    async fn put_multipart(
        &self,
        key: &Key,
        data: Bytes,
        cond: &PutCondition,
    ) -> Result<Version, StoreError> {
        self.precheck(key, cond).await?;
        let op = "CreateMultipartUpload";
        let object_key = self.object_key(key);
        let created = self
            .bounded(op, async {
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&object_key)
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))
            })
            .await
            .map_err(|f| self.unexpected(op, f))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "S3 at {} answered {op} without an upload id",
                    self.endpoint_label
                ))
            })?
            .to_owned();
        let result = self
            .upload_parts_and_complete(key, &object_key, &upload_id, data, cond)
            .await;
        if result.is_err() {
            self.abort_multipart(&object_key, &upload_id).await;
        }
        result
    }

    /// Fails a conditional multipart put early when its condition already fails, rather
    /// than after uploading every part. Only a shortcut: the condition that counts is the
    /// one on CompleteMultipartUpload, which the service evaluates atomically.
    async fn precheck(&self, key: &Key, cond: &PutCondition) -> Result<(), StoreError> {
        if *cond == PutCondition::None {
            return Ok(());
        }
        let op = "HeadObject";
        let head = self
            .bounded(op, async {
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))
            })
            .await;
        let current = match head {
            Ok(out) => Some(out.e_tag().map(str::to_owned)),
            Err(Failure::NotFound) => None,
            Err(f) => return Err(self.unexpected(op, f)),
        };
        let holds = match (cond, current) {
            (PutCondition::IfAbsent, existing) => existing.is_none(),
            (PutCondition::IfMatch(want), Some(Some(have))) => want.0 == have,
            (PutCondition::IfMatch(_), _) => false,
            (PutCondition::None, _) => true,
        };
        if holds {
            Ok(())
        } else {
            Err(Self::condition_failed(key))
        }
    }

    async fn upload_parts_and_complete(
        &self,
        key: &Key,
        object_key: &str,
        upload_id: &str,
        data: Bytes,
        cond: &PutCondition,
    ) -> Result<Version, StoreError> {
        let mut parts = Vec::new();
        let mut start = 0;
        let mut number = 1i32;
        while start < data.len() {
            let end = (start + PART_SIZE).min(data.len());
            let chunk = data.slice(start..end);
            let op = "UploadPart";
            let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            let out = self
                .bounded(op, async {
                    self.client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(object_key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(len)
                        .body(ByteStream::from(chunk))
                        .send()
                        .await
                        .map_err(|e| classify(e, &self.ctx(op)))
                })
                .await
                .map_err(|f| self.unexpected(op, f))?;
            let etag = self.version(op, out.e_tag())?;
            parts.push(
                CompletedPart::builder()
                    .e_tag(etag.0)
                    .part_number(number)
                    .build(),
            );
            start = end;
            number += 1;
        }
        let op = "CompleteMultipartUpload";
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(object_key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        req = match cond {
            PutCondition::None => req,
            PutCondition::IfAbsent => req.if_none_match("*"),
            PutCondition::IfMatch(v) => req.if_match(v.0.clone()),
        };
        let out = self
            .bounded(op, async {
                req.send().await.map_err(|e| classify(e, &self.ctx(op)))
            })
            .await
            .map_err(|f| match f {
                // AWS wants the whole upload redone after a conflict: leave that to the
                // caller's retry.
                Failure::Conflict => StoreError::Unavailable(format!(
                    "a concurrent operation on {key} interfered with its multipart upload"
                )),
                f => self.put_failure(key, cond, f),
            })?;
        self.version(op, out.e_tag())
    }

    /// Best effort: an upload left behind only costs storage until a lifecycle rule or a
    /// later abort removes it, so a failure here is logged, not returned.
    async fn abort_multipart(&self, object_key: &str, upload_id: &str) {
        let op = "AbortMultipartUpload";
        let result = self
            .bounded(op, async {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(object_key)
                    .upload_id(upload_id)
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))
            })
            .await;
        match result {
            Ok(_) | Err(Failure::NotFound) => {}
            Err(f) => tracing::warn!(
                bucket = %self.bucket,
                key = object_key,
                error = %self.unexpected(op, f),
                "could not abort a failed multipart upload; its parts stay until aborted"
            ),
        }
    }
}

#[async_trait]
impl Backend for S3Backend {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        let op = "GetObject";
        let result = self
            .bounded(op, async {
                let out = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))?;
                let version = self.version(op, out.e_tag()).map_err(Failure::Store)?;
                let data = out.body.collect().await.map_err(|e| {
                    Failure::Store(StoreError::Unavailable(format!(
                        "reading {key} from S3 at {} broke off: {e}",
                        self.endpoint_label
                    )))
                })?;
                Ok(Object {
                    data: data.into_bytes(),
                    version,
                })
            })
            .await;
        match result {
            Ok(object) => Ok(Some(object)),
            Err(Failure::NotFound) => Ok(None),
            Err(f) => Err(self.unexpected(op, f)),
        }
    }

    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError> {
        if data.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, data, &cond).await;
        }
        let mut conflicts = 0;
        loop {
            // Cloning `Bytes` is a reference count, not a copy.
            match self.put_single(key, data.clone(), &cond).await {
                Ok(version) => return Ok(version),
                Err(Failure::Conflict) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(conflicts))).await;
                }
                Err(Failure::Conflict) => {
                    return Err(StoreError::Unavailable(format!(
                        "concurrent operations on {key} kept interfering with a conditional write"
                    )));
                }
                Err(f) => return Err(self.put_failure(key, &cond, f)),
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        let op = "ListObjectsV2";
        let full_prefix = format!("{}{prefix}", self.key_prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .bounded(op, async {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full_prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify(e, &self.ctx(op)))
                })
                .await
                .map_err(|f| self.unexpected(op, f))?;
            for object in page.contents() {
                let Some(rel) = object
                    .key()
                    .and_then(|k| k.strip_prefix(self.key_prefix.as_str()))
                else {
                    continue;
                };
                // Objects whose names are not valid keys were not written by Dure.
                if let Ok(key) = Key::new(rel) {
                    out.push(ListEntry {
                        key,
                        size: object
                            .size()
                            .and_then(|s| u64::try_from(s).ok())
                            .unwrap_or(0),
                    });
                }
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_owned()),
                (Some(true), None) => {
                    return Err(StoreError::Unavailable(format!(
                        "S3 at {} cut a listing short without a continuation token",
                        self.endpoint_label
                    )));
                }
                _ => break,
            }
        }
        // S3 lists in byte order already; sorting keeps the promise on services that don't.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let op = "DeleteObject";
        let result = self
            .bounded(op, async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.object_key(key))
                    .send()
                    .await
                    .map_err(|e| classify(e, &self.ctx(op)))
            })
            .await;
        match result {
            Ok(_) | Err(Failure::NotFound) => Ok(()),
            Err(f) => Err(self.unexpected(op, f)),
        }
    }

    /// One DeleteObjects request per [`DELETE_BATCH`] keys (quiet mode: the answer lists
    /// only the keys that failed).
    async fn delete_many(&self, keys: &[Key]) -> Result<(), StoreError> {
        let op = "DeleteObjects";
        for chunk in keys.chunks(DELETE_BATCH) {
            let mut objects = Vec::with_capacity(chunk.len());
            for key in chunk {
                objects.push(
                    ObjectIdentifier::builder()
                        .key(self.object_key(key))
                        .build()
                        .map_err(|e| StoreError::Unavailable(format!("{op}: {e}")))?,
                );
            }
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("{op}: {e}")))?;
            let out = self
                .bounded(op, async {
                    self.client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete)
                        .send()
                        .await
                        .map_err(|e| classify(e, &self.ctx(op)))
                })
                .await
                .map_err(|f| self.unexpected(op, f))?;
            if let Some(failed) = out.errors().first() {
                return Err(StoreError::Unavailable(format!(
                    "S3 at {} did not delete {} of {} keys; first: {} ({})",
                    self.endpoint_label,
                    out.errors().len(),
                    chunk.len(),
                    failed.key().unwrap_or("?"),
                    failed
                        .message()
                        .or(failed.code())
                        .unwrap_or("no reason given"),
                )));
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.head_bucket().await
    }

    fn describe(&self) -> String {
        let prefix = self.key_prefix.trim_end_matches('/');
        if prefix.is_empty() {
            format!("s3://{} @ {}", self.bucket, self.endpoint_label)
        } else {
            format!("s3://{}/{prefix} @ {}", self.bucket, self.endpoint_label)
        }
    }
}
