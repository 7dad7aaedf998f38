//! Object storage behind a small trait: the S3 implementation the binaries
//! use, and an in-memory one for unit tests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::primitives::ByteStream;

use crate::kit::aws::classify_sdk_error;
use crate::kit::error::StoreError;

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Object keys on this page, in key order.
    pub keys: Vec<String>,
    /// Token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A safety net against a store that keeps returning continuation tokens.
const MAX_LIST_PAGES: usize = 100_000;

/// One page of a listing with each object's size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizedPage {
    /// Object keys on this page, in key order, with their size in bytes when
    /// the store says.
    pub objects: Vec<(String, Option<u64>)>,
    /// Token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Get, put and (paginated) list over buckets of objects.
pub trait ObjectStore: Send + Sync {
    /// Reads a whole object.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Reads a whole object into a buffer with room for `headroom` more
    /// bytes, so a caller that appends that much to it never copies it.
    fn get_with_headroom(
        &self,
        bucket: &str,
        key: &str,
        headroom: usize,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send {
        async move {
            let mut body = self.get(bucket, key).await?;
            body.reserve_exact(headroom);
            Ok(body)
        }
    }

    /// Writes a whole object.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists one page of keys under `prefix`, continuing from `continuation`.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// [`ObjectStore::list_page`] with each object's size (`None` where the
    /// store does not say).
    fn list_sized_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<SizedPage, StoreError>> + Send {
        async move {
            let page = self.list_page(bucket, prefix, continuation).await?;
            Ok(SizedPage {
                objects: page.keys.into_iter().map(|key| (key, None)).collect(),
                next: page.next,
            })
        }
    }

    /// Lists every key under `prefix`, following continuation tokens
    /// (ListObjectsV2 returns at most 1,000 keys per call).
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let mut keys = Vec::new();
            let mut continuation: Option<String> = None;
            for _ in 0..MAX_LIST_PAGES {
                let page = self.list_page(bucket, prefix, continuation.clone()).await?;
                keys.extend(page.keys);
                match next_page(bucket, prefix, continuation, page.next)? {
                    Some(next) => continuation = Some(next),
                    None => return Ok(keys),
                }
            }
            Err(too_many_pages(bucket, prefix))
        }
    }
}

/// The continuation token to follow after a page whose `next` is given, or
/// `None` after the last page. A token that repeats is an error, not a loop.
fn next_page(
    bucket: &str,
    prefix: &str,
    current: Option<String>,
    next: Option<String>,
) -> Result<Option<String>, StoreError> {
    match next {
        Some(next) if current.as_deref() == Some(next.as_str()) => Err(StoreError::Transient(
            format!("listing s3://{bucket}/{prefix}: continuation token {next:?} repeated"),
        )),
        next => Ok(next),
    }
}

fn too_many_pages(bucket: &str, prefix: &str) -> StoreError {
    StoreError::Transient(format!(
        "listing s3://{bucket}/{prefix}: more than {MAX_LIST_PAGES} pages"
    ))
}

/// Lists every object under `prefix`, with sizes, sending each page's
/// objects to `pages` as soon as it arrives and asking for the next one
/// at once, so a consumer works on one page while the next is listed.
/// Stops early, without error, when the consumer hangs up.
pub async fn send_listing<S: ObjectStore + ?Sized>(
    store: &S,
    bucket: &str,
    prefix: &str,
    pages: tokio::sync::mpsc::Sender<Vec<(String, Option<u64>)>>,
) -> Result<(), StoreError> {
    let mut continuation: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let page = store
            .list_sized_page(bucket, prefix, continuation.clone())
            .await?;
        if pages.send(page.objects).await.is_err() {
            return Ok(());
        }
        match next_page(bucket, prefix, continuation, page.next)? {
            Some(next) => continuation = Some(next),
            None => return Ok(()),
        }
    }
    Err(too_many_pages(bucket, prefix))
}

/// [`ObjectStore`] over Amazon S3.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    expected_owner: Option<String>,
}

impl S3Store {
    /// Wraps an S3 client.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            expected_owner: None,
        }
    }

    /// The object store of a function: S3, every call expecting the bucket
    /// to be owned by the function's own account (`SLUICE_BUCKET_OWNER`,
    /// which the operator sets).
    pub fn for_function(config: &aws_types::SdkConfig) -> Self {
        Self::new(crate::kit::aws::s3_client(config))
            .expecting_owner(crate::kit::config::optional("SLUICE_BUCKET_OWNER"))
    }

    /// Every call names `account` as the bucket's owner
    /// (`ExpectedBucketOwner`): S3 refuses it, whatever the bucket's policy
    /// says, when another account owns the bucket, so a bucket of the same
    /// name made first in another account (squatted) is never read from or
    /// written to.
    pub fn expecting_owner(mut self, account: Option<String>) -> Self {
        self.expected_owner = account.filter(|a| !a.is_empty());
        self
    }
}

impl ObjectStore for S3Store {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        self.get_with_headroom(bucket, key, 0).await
    }

    /// Reads the body chunk by chunk into one buffer sized from
    /// `Content-Length`: the object is held once, never copied whole.
    async fn get_with_headroom(
        &self,
        bucket: &str,
        key: &str,
        headroom: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let what = || format!("get s3://{bucket}/{key}");
        let mut output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &what()))?;
        let length = output
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(length.saturating_add(headroom));
        while let Some(chunk) = output
            .body
            .try_next()
            .await
            .map_err(|e| StoreError::Transient(format!("{}: reading body: {e}", what())))?
        {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The body goes unsigned (`UNSIGNED-PAYLOAD`), as boto3 sends it over
    /// HTTPS: TLS and the CRC32 checksum the SDK adds protect it, and
    /// hashing it for the signature would cost a pass over every byte.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("put s3://{bucket}/{key}")))?;
        Ok(())
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ListPage, StoreError> {
        let page = self.list_sized_page(bucket, prefix, continuation).await?;
        Ok(ListPage {
            keys: page.objects.into_iter().map(|(key, _)| key).collect(),
            next: page.next,
        })
    }

    async fn list_sized_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<SizedPage, StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_owner.clone())
            .prefix(prefix)
            .max_keys(SIZED_PAGE_KEYS)
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, &format!("list s3://{bucket}/{prefix}")))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|o| {
                let size = o.size().and_then(|n| u64::try_from(n).ok());
                o.key().map(|key| (key.to_owned(), size))
            })
            .collect();
        let next = if output.is_truncated().unwrap_or(false) {
            output.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(SizedPage { objects, next })
    }
}

/// Keys per page of a sized listing (S3 allows up to 1,000). A reader
/// lists one page ahead of its reads, and a page of 1,000 keys held three
/// times over (the XML, the SDK's objects, the keys) was a third of
/// `batch-aggregate`'s heap; 250 keys still last 16 rounds of reads, so the
/// next page arrives long before it is needed.
pub const SIZED_PAGE_KEYS: i32 = 250;

/// An object held by [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The bytes.
    pub body: Vec<u8>,
    /// The content type given on put.
    pub content_type: Option<String>,
}

/// In-memory [`ObjectStore`] for tests: pages listings like S3 (1,000 keys
/// per page unless configured), counts calls and can inject failures.
#[derive(Debug)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<(String, String), StoredObject>>,
    failures: Mutex<HashMap<String, StoreError>>,
    page_size: usize,
    list_calls: AtomicUsize,
    put_calls: AtomicUsize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with S3's page size of 1,000.
    pub fn new() -> Self {
        Self::with_page_size(1000)
    }

    /// An empty store returning at most `page_size` keys per page.
    pub fn with_page_size(page_size: usize) -> Self {
        Self {
            objects: Mutex::default(),
            failures: Mutex::default(),
            page_size: page_size.max(1),
            list_calls: AtomicUsize::new(0),
            put_calls: AtomicUsize::new(0),
        }
    }

    /// Stores an object (test setup).
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        self.lock_objects().insert(
            (bucket.to_owned(), key.to_owned()),
            StoredObject {
                body: body.into(),
                content_type: None,
            },
        );
    }

    /// Makes every get and put of `key` (in any bucket) fail with `error`.
    pub fn fail_on(&self, key: &str, error: StoreError) {
        self.failures
            .lock()
            .expect("memory store lock poisoned")
            .insert(key.to_owned(), error);
    }

    /// The object at `bucket`/`key`, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        self.lock_objects()
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// The object at `bucket`/`key` parsed as JSON, if present and valid.
    pub fn json(&self, bucket: &str, key: &str) -> Option<serde_json::Value> {
        self.object(bucket, key)
            .and_then(|o| serde_json::from_slice(&o.body).ok())
    }

    /// All keys in `bucket`, in order.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.lock_objects()
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// How many list pages were requested.
    pub fn list_calls(&self) -> usize {
        self.list_calls.load(Ordering::SeqCst)
    }

    /// How many puts were attempted.
    pub fn put_calls(&self) -> usize {
        self.put_calls.load(Ordering::SeqCst)
    }

    fn lock_objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), StoredObject>> {
        self.objects.lock().expect("memory store lock poisoned")
    }

    /// The injected failure for `key`, worded like [`S3Store`]'s errors.
    fn injected_failure(&self, what: impl FnOnce() -> String, key: &str) -> Option<StoreError> {
        let error = self
            .failures
            .lock()
            .expect("memory store lock poisoned")
            .get(key)
            .cloned()?;
        let what = what();
        Some(match error {
            StoreError::NotFound(m) => StoreError::NotFound(format!("{what}: {m}")),
            StoreError::Rejected(m) => StoreError::Rejected(format!("{what}: {m}")),
            StoreError::Transient(m) => StoreError::Transient(format!("{what}: {m}")),
        })
    }
}

impl ObjectStore for MemoryStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let what = || format!("get s3://{bucket}/{key}");
        if let Some(error) = self.injected_failure(what, key) {
            return Err(error);
        }
        self.object(bucket, key)
            .map(|o| o.body)
            .ok_or_else(|| StoreError::NotFound(format!("{}: NoSuchKey", what())))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.put_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = self.injected_failure(|| format!("put s3://{bucket}/{key}"), key) {
            return Err(error);
        }
        self.lock_objects().insert(
            (bucket.to_owned(), key.to_owned()),
            StoredObject {
                body,
                content_type: Some(content_type.to_owned()),
            },
        );
        Ok(())
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ListPage, StoreError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        let objects = self.lock_objects();
        let mut matching = objects
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k)
            .filter(|k| continuation.as_ref().is_none_or(|after| *k > after));
        let keys: Vec<String> = matching.by_ref().take(self.page_size).cloned().collect();
        let more = matching.next().is_some();
        let next = if more { keys.last().cloned() } else { None };
        Ok(ListPage { keys, next })
    }

    async fn list_sized_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<SizedPage, StoreError> {
        let page = self.list_page(bucket, prefix, continuation).await?;
        let objects = self.lock_objects();
        Ok(SizedPage {
            objects: page
                .keys
                .into_iter()
                .map(|key| {
                    let size = objects
                        .get(&(bucket.to_owned(), key.clone()))
                        .map(|o| o.body.len() as u64);
                    (key, size)
                })
                .collect(),
            next: page.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_follows_pages() {
        let store = MemoryStore::with_page_size(2);
        for i in 0..5 {
            store.insert("b", &format!("p/{i}"), "x");
        }
        store.insert("b", "other/1", "x");
        store.insert("c", "p/9", "x");
        let first = store.list_page("b", "p/", None).await.expect("page");
        assert_eq!(first.keys, vec!["p/0", "p/1"]);
        assert!(first.next.is_some());
        let all = store.list("b", "p/").await.expect("list");
        assert_eq!(all, vec!["p/0", "p/1", "p/2", "p/3", "p/4"]);
        // 1 manual + 3 pages for 5 keys at 2 per page.
        assert_eq!(store.list_calls(), 4);
    }

    #[tokio::test]
    async fn exact_page_multiple_has_no_empty_trailing_page() {
        let store = MemoryStore::with_page_size(2);
        for i in 0..4 {
            store.insert("b", &format!("{i}"), "x");
        }
        assert_eq!(store.list("b", "").await.expect("list").len(), 4);
        assert_eq!(store.list_calls(), 2);
    }

    #[tokio::test]
    async fn repeated_token_is_an_error_not_a_loop() {
        struct Stuck;
        impl ObjectStore for Stuck {
            async fn get(&self, _: &str, _: &str) -> Result<Vec<u8>, StoreError> {
                Ok(vec![])
            }
            async fn put(&self, _: &str, _: &str, _: Vec<u8>, _: &str) -> Result<(), StoreError> {
                Ok(())
            }
            async fn list_page(
                &self,
                _: &str,
                _: &str,
                _: Option<String>,
            ) -> Result<ListPage, StoreError> {
                Ok(ListPage {
                    keys: vec!["k".into()],
                    next: Some("same".into()),
                })
            }
        }
        let err = Stuck.list("b", "").await.expect_err("must stop");
        assert!(matches!(err, StoreError::Transient(m) if m.contains("repeated")));
    }

    #[tokio::test]
    async fn get_missing_is_not_found_and_failures_inject() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.get("b", "k").await,
            Err(StoreError::NotFound(_))
        ));
        store.fail_on("k", StoreError::Transient("boom".into()));
        assert_eq!(
            store.put("b", "k", vec![], "text/plain").await,
            Err(StoreError::Transient("put s3://b/k: boom".into()))
        );
        assert!(store.object("b", "k").is_none());
    }
}
