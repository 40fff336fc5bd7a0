//! Dure's S3 storage backend, for AWS S3 and S3-compatible services (MinIO, Ceph RGW,
//! Garage).
//!
//! [`S3Backend::connect`] takes an [`S3Config`], checks the bucket, and gives a
//! [`dure_storage::Backend`] to wrap in a [`dure_storage::Store`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), dure_storage::StoreError> {
//! use dure_storage_s3::{S3Backend, S3Config, S3Credentials};
//!
//! let cfg = S3Config {
//!     endpoint: Some("http://127.0.0.1:9000".into()),
//!     path_style: true,
//!     credentials: S3Credentials::Static {
//!         access_key_id: "minio".into(),
//!         secret_access_key: "minio-secret".into(),
//!         session_token: None,
//!     },
//!     ..S3Config::new("dure")
//! };
//! let store = dure_storage::Store::new(S3Backend::connect(cfg).await?);
//! # Ok(()) }
//! ```
//!
//! The service must support conditional writes (`If-None-Match: *` and `If-Match` on
//! PutObject and CompleteMultipartUpload): they are what fences two writers of one log entry.
//! The crate is kept apart from `dure-storage` because the AWS SDK is a large build.

mod backend;
mod config;
mod error;

pub use backend::{DELETE_BATCH, MULTIPART_THRESHOLD, PART_SIZE, S3Backend};
pub use config::{S3Config, S3Credentials, Secret};
