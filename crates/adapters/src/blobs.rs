//! Object storage for exports: a local directory (embedded) or an S3-compatible bucket, both
//! through `object_store`.
//!
//! An object is written with a multipart upload ([`BlobWriter`]): parts of
//! [`PART_BYTES`] go out as they fill, at most [`PARALLEL_PARTS`] at once, so memory stays
//! bounded whatever the size; an upload that is not finished is aborted and leaves no object.
//! Reading streams the object; on S3 a download can instead be a short-lived presigned URL.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use depot_domain::{AppError, AppResult, ErrorCode};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

/// Size of one uploaded part (S3's minimum is 5 MiB for every part but the last).
pub const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts uploaded at once.
pub const PARALLEL_PARTS: usize = 2;

/// Where an S3-compatible bucket is and how to sign in to it.
#[derive(Clone)]
pub struct S3Options {
    pub bucket: String,
    pub region: String,
    /// For a server other than AWS (MinIO, Ceph, moto): its base URL; path-style requests.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// An object's bytes as they are read.
pub type BlobStream = BoxStream<'static, AppResult<Bytes>>;

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The bucket, when the store is S3: it can presign.
    s3: Option<Arc<AmazonS3>>,
}

fn unavailable(err: object_store::Error) -> AppError {
    AppError::new(
        ErrorCode::ReportsStorageUnavailable,
        "object storage did not answer",
    )
    .with_source(err)
}

fn path(key: &str) -> AppResult<Path> {
    Path::parse(key).map_err(|e| AppError::internal(format!("bad object key {key:?}: {e}")))
}

impl Blobs {
    /// Objects as files under `dir` (created if missing).
    pub fn local(dir: &FsPath) -> AppResult<Self> {
        std::fs::create_dir_all(dir).map_err(AppError::internal)?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(AppError::internal)?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            s3: None,
        })
    }

    /// Objects in an S3-compatible bucket.
    pub fn s3(options: &S3Options) -> AppResult<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&options.bucket)
            .with_region(&options.region)
            .with_access_key_id(&options.access_key_id)
            .with_secret_access_key(&options.secret_access_key)
            // A store that does not answer fails the run within a minute or so (the job is
            // then tried again), rather than after object_store's default three minutes.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(30)),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let s3 = Arc::new(builder.build().map_err(AppError::internal)?);
        Ok(Self {
            store: s3.clone(),
            s3: Some(s3),
        })
    }

    /// `"local"` or `"s3"`.
    pub fn backend(&self) -> &'static str {
        if self.s3.is_some() { "s3" } else { "local" }
    }

    /// Starts writing `key`; nothing is visible under it until [`BlobWriter::finish`].
    pub async fn writer(&self, key: &str) -> AppResult<BlobWriter> {
        let upload = self
            .store
            .put_multipart(&path(key)?)
            .await
            .map_err(unavailable)?;
        Ok(BlobWriter {
            upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
            bytes: 0,
        })
    }

    /// The object's size and its bytes as a stream; `None` when there is no such object.
    pub async fn read(&self, key: &str) -> AppResult<Option<(u64, BlobStream)>> {
        match self.store.get(&path(key)?).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(unavailable).boxed();
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> AppResult<bool> {
        match self.store.head(&path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Deletes `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> AppResult<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// A URL that downloads `key` for `ttl` without credentials (S3 only; `None` locally, where
    /// the API streams the object itself).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> AppResult<Option<String>> {
        let Some(s3) = &self.s3 else {
            return Ok(None);
        };
        let url = s3
            .signed_url(Method::GET, &path(key)?, ttl)
            .await
            .map_err(unavailable)?;
        Ok(Some(url.to_string()))
    }

    /// Whether the store answers (a listing of nothing in particular).
    pub async fn ping(&self) -> AppResult<()> {
        let probe = Path::from("depot-probe");
        self.store
            .list_with_delimiter(Some(&probe))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

/// An object being written in parts.
pub struct BlobWriter {
    upload: WriteMultipart,
    bytes: u64,
}

impl BlobWriter {
    /// Appends `data`, first waiting while [`PARALLEL_PARTS`] parts are still in flight.
    pub async fn write(&mut self, data: &[u8]) -> AppResult<()> {
        self.upload
            .wait_for_capacity(PARALLEL_PARTS)
            .await
            .map_err(unavailable)?;
        self.upload.write(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Completes the upload: the object appears whole.
    pub async fn finish(self) -> AppResult<u64> {
        let bytes = self.bytes;
        self.upload.finish().await.map_err(unavailable)?;
        Ok(bytes)
    }

    /// Gives the upload up: its parts are deleted and no object appears.
    pub async fn abort(self) -> AppResult<()> {
        self.upload.abort().await.map_err(unavailable)
    }
}
