//! A library in an S3-compatible object store (`s3://bucket/prefix`): key
//! prefixes are folders, objects are files. The `object_store` crate signs
//! and sends the requests (LIST, and GET of byte ranges; nothing that
//! writes), on a tokio runtime this backing owns, so the rest of the
//! program stays plain blocking Rust.
//!
//! A folder is one LIST (paginated by the client), kept for
//! [`LISTING_TTL`]: a change in the bucket shows within that time. An
//! object's identity is its key, size, last-modified time and ETag
//! ([`FileId::tag`] holds a digest of the ETag); every GET carries
//! `If-Match` with the ETag seen at listing, so a read never mixes two
//! versions of an object: a changed one fails the read, which the
//! library turns into a fresh listing or `EIO` with the reason.
//!
//! Objects have no owner, group or mode: every file and folder is shown
//! as owned by the user running ninja-fs, readable by all who can see the
//! mount (`0444`, folders `0555`; `--allow-other` decides who that is).
//!
//! Failures (timeouts, 5xx including 503 SlowDown, dropped connections)
//! are retried by the client with backoff, at most [`MAX_RETRIES`] times
//! within [`RETRY_WINDOW`], and every request is cut off after
//! [`REQUEST_TIMEOUT`]; then the read fails with the store's words.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, RetryConfig,
};
use rustix::fs::FileType;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;

use super::{Access, Backing, FileId, Folder, Listed, PassReader, ReadAt, ReadError, ReadPass};
use crate::cache::lock;
use crate::digest;

/// How long a folder's listing is trusted before it is listed again.
pub const LISTING_TTL: Duration = Duration::from_secs(2);

/// Requests in flight at once, over all readers of one store.
pub const MAX_IN_FLIGHT: usize = 32;

/// Retries of one request (timeouts, 5xx, throttling, dropped
/// connections), and the time after which no retry starts.
pub const MAX_RETRIES: usize = 4;
pub const RETRY_WINDOW: Duration = Duration::from_secs(15);

/// The longest one request may take, all retries included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Objects larger than this are fetched as this many bytes per request,
/// several at once.
const PART: usize = 8 << 20;

/// Regions of one object at most this far apart are fetched by one GET.
const COALESCE_GAP: u64 = 64 << 10;

/// An `s3://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl S3Url {
    /// `s3://BUCKET[/PREFIX]`, or `None` for anything else (a local path).
    pub fn parse(text: &str) -> Option<S3Url> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// `s3://bucket/prefix` (no trailing `/`).
    pub fn to_url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The URL's last part and the URL of what holds it: a single object
    /// named by `info s3://b/Game.sfc` is read from its "folder".
    pub fn split_last(&self) -> Option<(S3Url, String)> {
        let (folder, name) = match self.prefix.rsplit_once('/') {
            Some((folder, name)) => (folder.to_string(), name.to_string()),
            None if self.prefix.is_empty() => return None,
            None => (String::new(), self.prefix.clone()),
        };
        Some((
            S3Url {
                bucket: self.bucket.clone(),
                prefix: folder,
            },
            name,
        ))
    }
}

/// Why a store cannot be used, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{url}: {detail}")]
    Config { url: String, detail: String },
    #[error(
        "{url}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in \
         ~/.aws/credentials (AWS_SKIP_SIGNATURE=true for a public bucket)"
    )]
    NoCredentials { url: String },
    #[error("{url}: the bucket {bucket} does not exist at {endpoint}")]
    NoBucket {
        url: String,
        bucket: String,
        endpoint: String,
    },
    #[error(
        "{url}: the store refused the credentials ({detail}); check AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY and the region"
    )]
    Refused { url: String, detail: String },
    #[error("{url}: cannot list it: {detail}")]
    Unreachable { url: String, detail: String },
}

/// Where to reach the store and how to sign for it, besides what the
/// standard environment variables say.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `--s3-endpoint`: overrides `AWS_ENDPOINT_URL` and the config file.
    pub endpoint: Option<String>,
}

/// The endpoint `--s3-endpoint` gave for this run, for every store opened
/// without one of its own.
static CLI_ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the endpoint of every store this run opens (`--s3-endpoint`).
pub fn use_endpoint(endpoint: &str) {
    let _ = CLI_ENDPOINT.set(endpoint.to_string());
}

/// The object at `url` (`s3://BUCKET/KEY`), whole, read with one GET
/// pinned to the version its listing showed; refused before the GET if
/// it is larger than `max` bytes.
pub fn read_object(url: &str, max: u64) -> io::Result<Vec<u8>> {
    let not_object = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "names a bucket or folder, not an object (s3://BUCKET/KEY)",
        )
    };
    let (folder, name) = S3Url::parse(url)
        .and_then(|url| url.split_last())
        .ok_or_else(not_object)?;
    let bucket = S3Bucket::open(&folder, &S3Options::default()).map_err(io::Error::other)?;
    let (id, kind) = bucket.stat_with_type(&name)?;
    if kind != FileType::RegularFile {
        return Err(not_object());
    }
    if id.size > max {
        return Err(io::Error::other(format!(
            "it is larger ({} bytes) than the largest input allowed ({max} bytes)",
            id.size
        )));
    }
    let backing: &dyn Backing = &bucket;
    backing.read_whole(&name, &id).map_err(io::Error::other)
}

/// An object as listed.
#[derive(Debug, Clone)]
struct Object {
    id: FileId,
    etag: Option<String>,
}

/// One folder (key prefix) as one LIST found it.
#[derive(Debug)]
struct Listing {
    id: FileId,
    folders: Vec<String>,
    files: HashMap<String, Object>,
    /// Names in listing order (the store's: by key).
    order: Vec<String>,
}

/// A folder's listing and when it was made; its lock is held while it is
/// listed again, so many lookups at once wait for one LIST.
type ListingSlot = Arc<Mutex<Option<(Instant, Arc<Listing>)>>>;

pub struct S3Bucket {
    url: S3Url,
    /// The URL as a path, for `Backing::root`.
    root: PathBuf,
    endpoint: String,
    store: Arc<AmazonS3>,
    runtime: Runtime,
    in_flight: Arc<Semaphore>,
    listings: Mutex<HashMap<String, ListingSlot>>,
    owner: (u32, u32),
}

impl S3Bucket {
    /// The store at `url`, checked by listing its root: bad credentials,
    /// a missing bucket or an unreachable endpoint fail here, at once.
    pub fn open(url: &S3Url, options: &S3Options) -> Result<S3Bucket, S3Error> {
        let url_text = url.to_url();
        let config_error = |detail: String| S3Error::Config {
            url: url_text.clone(),
            detail,
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
        let shared = shared_config::read();
        let from_env = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
        let has_key = from_env(AmazonS3ConfigKey::AccessKeyId).is_some();
        let skip = from_env(AmazonS3ConfigKey::SkipSignature).is_some_and(|v| v == "true");
        let env_region = from_env(AmazonS3ConfigKey::Region)
            .or_else(|| from_env(AmazonS3ConfigKey::DefaultRegion));
        let env_endpoint = from_env(AmazonS3ConfigKey::Endpoint);
        if !has_key && !skip {
            // Without credentials the client would ask the cloud's
            // instance metadata service: only where asked to.
            match (&shared.access_key_id, &shared.secret_access_key) {
                (Some(id), Some(secret)) => {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                    if let Some(token) = &shared.session_token {
                        builder = builder.with_token(token);
                    }
                }
                _ => return Err(S3Error::NoCredentials { url: url_text }),
            }
        }
        let region = env_region
            .or_else(|| shared.region.clone())
            .unwrap_or_else(|| "us-east-1".to_string());
        builder = builder.with_region(&region);
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| CLI_ENDPOINT.get().cloned())
            .or(env_endpoint)
            .or_else(|| shared.endpoint_url.clone());
        let endpoint_text = match &endpoint {
            Some(endpoint) => {
                builder = builder.with_endpoint(endpoint);
                endpoint.clone()
            }
            None => format!("AWS S3 ({region})"),
        };
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_WINDOW,
        };
        let plain_http = endpoint.as_ref().is_some_and(|e| e.starts_with("http://"));
        let client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5));
        let store = builder
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|error| config_error(error.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ninja-fs-s3")
            .enable_all()
            .build()
            .map_err(|error| config_error(format!("cannot start its I/O threads: {error}")))?;
        let bucket = S3Bucket {
            root: PathBuf::from(&url_text),
            url: url.clone(),
            endpoint: endpoint_text,
            store: Arc::new(store),
            runtime,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            listings: Mutex::new(HashMap::new()),
            // SAFETY: geteuid and getegid cannot fail and touch no memory.
            owner: unsafe { (libc::geteuid(), libc::getegid()) },
        };
        bucket.list_root_first()?;
        Ok(bucket)
    }

    /// Lists the root: what tells a missing bucket or refused credentials.
    fn list_root_first(&self) -> Result<(), S3Error> {
        let url = self.url.to_url();
        match self.list(&self.key_of("")) {
            Ok(listing) => {
                let slot = self.slot("");
                *lock(&slot) = Some((Instant::now(), Arc::new(listing)));
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => Err(S3Error::NoBucket {
                url,
                bucket: self.url.bucket.clone(),
                endpoint: self.endpoint.clone(),
            }),
            Err(
                error @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => Err(S3Error::Refused {
                url,
                detail: innermost(&error),
            }),
            Err(error) => {
                // A LIST's errors come as the store's own XML, not typed.
                let detail = innermost(&error);
                if detail.contains("NoSuchBucket") {
                    Err(S3Error::NoBucket {
                        url,
                        bucket: self.url.bucket.clone(),
                        endpoint: self.endpoint.clone(),
                    })
                } else if [
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AccessDenied",
                    "403 Forbidden",
                ]
                .iter()
                .any(|code| detail.contains(code))
                {
                    Err(S3Error::Refused { url, detail })
                } else {
                    Err(S3Error::Unreachable { url, detail })
                }
            }
        }
    }

    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// The key prefix of folder `rel_dir`, or the key of file `rel`.
    fn key_of(&self, rel: &str) -> String {
        match (self.url.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.url.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.url.prefix),
        }
    }

    fn slot(&self, rel_dir: &str) -> ListingSlot {
        lock(&self.listings)
            .entry(rel_dir.to_string())
            .or_default()
            .clone()
    }

    /// The listing of folder `rel_dir`, listed again once it is older than
    /// [`LISTING_TTL`]. A store that cannot be reached leaves the last
    /// listing in use (reads then fail with the reason), so the mount keeps
    /// its shape until the store is back.
    fn listing(&self, rel_dir: &str) -> io::Result<Arc<Listing>> {
        let slot = self.slot(rel_dir);
        let mut held = lock(&slot);
        if let Some((at, listing)) = held.as_ref()
            && at.elapsed() < LISTING_TTL
        {
            return Ok(listing.clone());
        }
        match self.list(&self.key_of(rel_dir)) {
            Ok(listing) => {
                let listing = Arc::new(listing);
                *held = Some((Instant::now(), listing.clone()));
                Ok(listing)
            }
            Err(error) => {
                let error = store_error(error);
                let Some((at, last)) = held.as_mut() else {
                    return Err(error);
                };
                // Said once a while, not at every lookup; the store is
                // asked again after another LISTING_TTL.
                if at.elapsed() < LISTING_TTL * 2 {
                    log::warn!(
                        "{}: cannot list it again, showing the last listing: {error}",
                        self.path_of(rel_dir).display()
                    );
                }
                *at = Instant::now() - LISTING_TTL / 2;
                Ok(last.clone())
            }
        }
    }

    /// One LIST of the folder with key prefix `prefix` (all its pages).
    fn list(&self, prefix: &str) -> Result<Listing, object_store::Error> {
        let key =
            Key::parse(prefix).map_err(|source| object_store::Error::InvalidPath { source })?;
        let store = self.store.clone();
        let result = self.run(async move {
            let prefix = (!key.as_ref().is_empty()).then_some(&key);
            store.list_with_delimiter(prefix).await
        })?;
        let folder_access = Access::new(self.owner.0, self.owner.1, 0o555);
        let file_access = Access::new(self.owner.0, self.owner.1, 0o444);
        let mut folders: Vec<String> = result
            .common_prefixes
            .iter()
            .filter_map(|path| path.filename().map(str::to_string))
            .collect();
        folders.sort();
        let mut files = HashMap::new();
        let mut order = Vec::new();
        // The folder's identity digests every entry's.
        let mut summary = Vec::new();
        let mut newest = 0i128;
        for folder in &folders {
            summary.extend_from_slice(folder.as_bytes());
            summary.push(b'/');
        }
        for meta in &result.objects {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let object = object_of(meta, file_access);
            summary.extend_from_slice(name.as_bytes());
            summary.extend_from_slice(&object.id.tag.to_le_bytes());
            summary.extend_from_slice(&object.id.size.to_le_bytes());
            summary.extend_from_slice(&object.id.mtime_ns.to_le_bytes());
            newest = newest.max(object.id.mtime_ns);
            order.push(name.to_string());
            files.insert(name.to_string(), object);
        }
        let id = FileId {
            dev: 0,
            ino: u64_of(prefix.as_bytes()),
            size: (folders.len() + files.len()) as u64,
            mtime_ns: newest,
            ctime_ns: newest,
            access: folder_access,
            tag: u128::from_le_bytes(digest::md5(&summary)),
        };
        Ok(Listing {
            id,
            folders,
            files,
            order,
        })
    }

    /// Runs `work` on the runtime, within [`REQUEST_TIMEOUT`], as one of
    /// at most [`MAX_IN_FLIGHT`].
    fn run<T>(
        &self,
        work: impl Future<Output = Result<T, object_store::Error>>,
    ) -> Result<T, object_store::Error> {
        self.runtime.block_on(bounded(&self.in_flight, work))
    }

    /// The object `rel` as its folder's listing knows it.
    fn object(&self, rel: &str) -> io::Result<Object> {
        let (rel_dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        self.listing(rel_dir)?
            .files
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

/// `work` within [`REQUEST_TIMEOUT`], holding one of the permits of
/// `in_flight`.
async fn bounded<T>(
    in_flight: &Semaphore,
    work: impl Future<Output = Result<T, object_store::Error>>,
) -> Result<T, object_store::Error> {
    let _permit = in_flight.acquire().await;
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(object_store::Error::Generic {
            store: "S3",
            source: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()).into(),
        }),
    }
}

/// An object's identity and ETag.
fn object_of(meta: &ObjectMeta, access: Access) -> Object {
    let mtime_ns = i128::from(meta.last_modified.timestamp()) * 1_000_000_000
        + i128::from(meta.last_modified.timestamp_subsec_nanos());
    let tag = meta
        .e_tag
        .as_ref()
        .map_or(0, |etag| u128::from_le_bytes(digest::md5(etag.as_bytes())));
    Object {
        id: FileId {
            dev: 0,
            ino: u64_of(meta.location.as_ref().as_bytes()),
            size: meta.size,
            mtime_ns,
            ctime_ns: mtime_ns,
            access,
            tag,
        },
        etag: meta.e_tag.clone(),
    }
}

/// A stable number for a key: its MD5's first eight bytes.
fn u64_of(bytes: &[u8]) -> u64 {
    let md5 = digest::md5(bytes);
    u64::from_le_bytes([
        md5[0], md5[1], md5[2], md5[3], md5[4], md5[5], md5[6], md5[7],
    ])
}

/// What the store said: the code and message of its XML error (an S3
/// error body), else `text` as it is.
fn store_words(text: String) -> String {
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_string())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => {
            let before = text.find(": <?xml").or_else(|| text.find(": <Error"));
            let head = before.map_or("", |at| &text[..at]);
            format!("{head}: {code}: {message}")
        }
        _ => text,
    }
}

/// The messages of an error chain, the store's own words last.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    store_words(chain(error))
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !text.is_empty() && !words.contains(&text) {
            words = format!("{words}: {text}");
        }
        source = inner.source();
    }
    words
}

/// A store error as an I/O error a reader understands.
fn store_error(error: object_store::Error) -> io::Error {
    let kind = match &error {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("the object store: {}", innermost(&error)))
}

/// The error of a GET whose `If-Match` failed: the object changed.
#[derive(Debug, thiserror::Error)]
#[error("the object changed since it was listed")]
struct ObjectChanged;

impl Backing for S3Bucket {
    fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            PathBuf::from(format!("{}/{rel}", self.url.to_url()))
        }
    }

    fn open_folder(&self, rel_dir: &str) -> io::Result<Box<dyn Folder + '_>> {
        let listing = self.listing(rel_dir)?;
        // A prefix holding nothing is no folder (the root always is).
        if !rel_dir.is_empty() && listing.folders.is_empty() && listing.files.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(Box::new(ListedFolder(listing)))
    }

    fn stat_with_type(&self, rel: &str) -> io::Result<(FileId, FileType)> {
        if rel.is_empty() {
            return Ok((self.listing("")?.id, FileType::Directory));
        }
        let (rel_dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent = self.listing(rel_dir)?;
        if let Some(object) = parent.files.get(name) {
            return Ok((object.id, FileType::RegularFile));
        }
        if parent.folders.iter().any(|folder| folder == name) {
            return Ok((self.listing(rel)?.id, FileType::Directory));
        }
        Err(io::ErrorKind::NotFound.into())
    }

    fn parallel_reads(&self) -> usize {
        MAX_IN_FLIGHT
    }

    fn open_file(&self, _rel: &str) -> io::Result<File> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an object in a store is no local file",
        ))
    }

    /// One pass always: every GET is pinned to the ETag seen at listing,
    /// so the bytes are one version's or the read fails.
    fn read_passes(
        &self,
        rel: &str,
        expected: Option<&FileId>,
        read: &mut PassReader<'_>,
    ) -> Result<FileId, ReadError> {
        let changed = || ReadError::Changed {
            path: rel.to_string(),
        };
        let io_error = |source: io::Error| {
            if source
                .get_ref()
                .is_some_and(|inner| inner.is::<ObjectChanged>())
            {
                changed()
            } else {
                ReadError::Io {
                    path: rel.to_string(),
                    source,
                }
            }
        };
        let object = self.object(rel).map_err(io_error)?;
        if expected.is_some_and(|expected| object.id != *expected) {
            return Err(changed());
        }
        let key =
            Key::parse(self.key_of(rel)).map_err(|error| io_error(io::Error::other(error)))?;
        let reader: Arc<dyn ReadAt> = Arc::new(ObjectReader {
            store: self.store.clone(),
            runtime: self.runtime.handle().clone(),
            in_flight: self.in_flight.clone(),
            key,
            etag: object.etag,
            size: object.id.size,
        });
        read(&reader, &object.id, ReadPass::First).map_err(io_error)?;
        Ok(object.id)
    }
}

/// A folder as its LIST found it.
struct ListedFolder(Arc<Listing>);

impl Folder for ListedFolder {
    fn id(&self) -> io::Result<FileId> {
        Ok(self.0.id)
    }

    fn list(&self) -> io::Result<Vec<Listed>> {
        let folders = self
            .0
            .folders
            .iter()
            .map(|name| (name, FileType::Directory));
        let files = self
            .0
            .order
            .iter()
            .map(|name| (name, FileType::RegularFile));
        Ok(folders
            .chain(files)
            .enumerate()
            .map(|(at, (name, file_type))| Listed {
                name: name.into(),
                ino: at as u64,
                file_type,
            })
            .collect())
    }

    fn stat_entry(&self, name: &std::ffi::OsStr) -> io::Result<FileId> {
        name.to_str()
            .and_then(|name| self.0.files.get(name))
            .map(|object| object.id)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn entry_type(&self, name: &std::ffi::OsStr) -> io::Result<FileType> {
        let name = name.to_str().ok_or(io::ErrorKind::NotFound)?;
        if self.0.files.contains_key(name) {
            Ok(FileType::RegularFile)
        } else if self.0.folders.iter().any(|folder| folder == name) {
            Ok(FileType::Directory)
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }
}

/// Reads of one version of one object: ranged GETs with `If-Match`.
struct ObjectReader {
    store: Arc<AmazonS3>,
    runtime: Handle,
    in_flight: Arc<Semaphore>,
    key: Key,
    etag: Option<String>,
    size: u64,
}

impl ObjectReader {
    /// Fills each `(start, buffer)` from the object, every [`PART`] bytes
    /// a GET of its own, all at once (as many as [`MAX_IN_FLIGHT`] allows).
    fn fetch(&self, regions: &mut [(u64, &mut [u8])]) -> io::Result<()> {
        let mut pieces: Vec<(u64, &mut [u8])> = Vec::new();
        for (start, buf) in regions.iter_mut() {
            let mut at = *start;
            for piece in buf.chunks_mut(PART) {
                let end = at + piece.len() as u64;
                if end > self.size {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if !piece.is_empty() {
                    pieces.push((at, piece));
                }
                at = end;
            }
        }
        pieces.sort_by_key(|(at, _)| *at);
        let ranges = coalesced(
            pieces
                .iter()
                .map(|(at, piece)| *at..*at + piece.len() as u64),
        );
        if ranges.is_empty() {
            return Ok(());
        }
        let fetched = self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (index, range) in ranges.iter().cloned().enumerate() {
                let (store, key, in_flight) =
                    (self.store.clone(), self.key.clone(), self.in_flight.clone());
                let options = GetOptions {
                    if_match: self.etag.clone(),
                    range: Some(GetRange::Bounded(range)),
                    ..GetOptions::default()
                };
                tasks.spawn(async move {
                    let bytes = bounded(&in_flight, async {
                        store.get_opts(&key, options).await?.bytes().await
                    })
                    .await;
                    (index, bytes)
                });
            }
            let mut fetched = Vec::new();
            while let Some(done) = tasks.join_next().await {
                fetched.push(done.map_err(|error| io::Error::other(error.to_string()))?);
            }
            Ok::<_, io::Error>(fetched)
        })?;
        let mut fetched = fetched
            .into_iter()
            .map(|(index, bytes)| {
                let bytes = bytes.map_err(|error| match error {
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. } => io::Error::other(ObjectChanged),
                    other => store_error(other),
                })?;
                let range = ranges[index].clone();
                if bytes.len() as u64 != range.end - range.start {
                    return Err(io::Error::other(format!(
                        "the object store sent {} bytes where {} were asked",
                        bytes.len(),
                        range.end - range.start
                    )));
                }
                Ok((range, bytes))
            })
            .collect::<io::Result<Vec<_>>>()?;
        fetched.sort_by_key(|(range, _)| range.start);
        for (at, piece) in pieces {
            let end = at + piece.len() as u64;
            let (range, bytes) = fetched
                .iter()
                .find(|(range, _)| range.start <= at && end <= range.end)
                .ok_or_else(|| io::Error::other("a piece no request covered"))?;
            let from = (at - range.start) as usize;
            piece.copy_from_slice(&bytes[from..from + piece.len()]);
        }
        Ok(())
    }
}

/// Requests for `ranges` (sorted by start): ranges closer than
/// [`COALESCE_GAP`] share one request (one 66 KiB GET costs about what a
/// 33 KiB one does; two cost two), none longer than [`PART`].
fn coalesced(ranges: impl Iterator<Item = Range<u64>>) -> Vec<Range<u64>> {
    let mut requests: Vec<Range<u64>> = Vec::new();
    for range in ranges {
        match requests.last_mut() {
            Some(last)
                if range.start <= last.end + COALESCE_GAP
                    && range.end.max(last.end) - last.start <= PART as u64 =>
            {
                last.end = last.end.max(range.end);
            }
            _ => requests.push(range),
        }
    }
    requests
}

impl ReadAt for ObjectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let len = usize::try_from(self.size - offset).map_or(buf.len(), |left| left.min(buf.len()));
        self.fetch(&mut [(offset, &mut buf[..len])])?;
        Ok(len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fetch(&mut [(offset, buf)])
    }

    fn read_regions(&self, regions: &mut [(u64, &mut [u8])]) -> io::Result<()> {
        self.fetch(regions)
    }
}

/// The AWS CLI's shared files (`~/.aws/credentials`, `~/.aws/config`), which
/// `object_store` does not read. Read by hand: they are small INI files, and
/// the AWS SDK that reads them would bring a second S3 client along.
mod shared_config {
    use std::path::PathBuf;

    /// What the files say for the profile in use (`AWS_PROFILE`, else
    /// `default`).
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub struct Shared {
        pub access_key_id: Option<String>,
        pub secret_access_key: Option<String>,
        pub session_token: Option<String>,
        pub region: Option<String>,
        pub endpoint_url: Option<String>,
    }

    pub fn read() -> Shared {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|home| home.join(default)))
        };
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let text = |path: Option<PathBuf>| {
            path.and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default()
        };
        let credentials = text(file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"));
        let config = text(file("AWS_CONFIG_FILE", ".aws/config"));
        from_texts(&credentials, &config, &profile)
    }

    /// The credentials file names a profile `[name]`, the config file
    /// `[profile name]` (and `[default]`).
    pub fn from_texts(credentials: &str, config: &str, profile: &str) -> Shared {
        let in_credentials = section(credentials, profile);
        let config_name = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        let in_config = section(config, &config_name);
        let get = |key: &str| {
            in_credentials
                .iter()
                .chain(&in_config)
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        Shared {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
            session_token: get("aws_session_token"),
            region: get("region"),
            endpoint_url: get("endpoint_url"),
        }
    }

    /// The `key = value` lines of section `[name]`.
    fn section(text: &str, name: &str) -> Vec<(String, String)> {
        let mut inside = false;
        let mut found = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = header.trim() == name;
                continue;
            }
            if inside && let Some((key, value)) = line.split_once('=') {
                found.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        found
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn profiles_of_both_files() {
            let credentials = "[default]\naws_access_key_id = AKID\naws_secret_access_key=SECRET\n\n[other]\naws_access_key_id = OTHER\n";
            let config = "# comment\n[default]\nregion = eu-west-3\n[profile other]\nregion = us-west-2\nendpoint_url = http://127.0.0.1:9000\n";
            let default = from_texts(credentials, config, "default");
            assert_eq!(default.access_key_id.as_deref(), Some("AKID"));
            assert_eq!(default.secret_access_key.as_deref(), Some("SECRET"));
            assert_eq!(default.region.as_deref(), Some("eu-west-3"));
            assert_eq!(default.endpoint_url, None);
            let other = from_texts(credentials, config, "other");
            assert_eq!(other.access_key_id.as_deref(), Some("OTHER"));
            assert_eq!(other.secret_access_key, None);
            assert_eq!(other.region.as_deref(), Some("us-west-2"));
            assert_eq!(other.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
            assert_eq!(from_texts("", "", "none"), Shared::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_in_words() {
        let xml = "GET failed: 404 Not Found: <?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>";
        assert_eq!(
            store_words(xml.to_string()),
            "GET failed: 404 Not Found: NoSuchKey: The key does not exist"
        );
        assert_eq!(store_words("refused".into()), "refused");
    }

    #[test]
    fn near_regions_share_a_request() {
        let detection = [0..0x8400, 0xFC00..0x1_0200, 0x40_FC00..0x41_0200];
        assert_eq!(
            coalesced(detection.into_iter()),
            [0..0x1_0200, 0x40_FC00..0x41_0200]
        );
        let parts = [0..PART as u64, PART as u64..PART as u64 + 5];
        assert_eq!(coalesced(parts.clone().into_iter()), parts);
        assert_eq!(coalesced(std::iter::empty()), []);
    }

    #[test]
    fn urls() {
        let url = S3Url::parse("s3://roms/snes/usa/").unwrap();
        assert_eq!(url.bucket, "roms");
        assert_eq!(url.prefix, "snes/usa");
        assert_eq!(url.to_url(), "s3://roms/snes/usa");
        let (folder, name) = url.split_last().unwrap();
        assert_eq!(
            (folder.to_url().as_str(), name.as_str()),
            ("s3://roms/snes", "usa")
        );
        let bucket = S3Url::parse("s3://roms").unwrap();
        assert_eq!(
            (bucket.prefix.as_str(), bucket.to_url().as_str()),
            ("", "s3://roms")
        );
        assert_eq!(bucket.split_last(), None);
        assert_eq!(S3Url::parse("/srv/roms"), None);
        assert_eq!(S3Url::parse("roms"), None);
    }
}
