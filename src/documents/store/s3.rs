//! The S3-compatible document store (AWS S3, MinIO, Ceph, Garage, …)
//! through `object_store`: each document at `<prefix>/<first two hex
//! digits>/<sha256>`, what it is beside it in `<sha256>.json`. S3 writes an
//! object whole or not at all, so there are no partial files; a document
//! put again rewrites its small description, whose time is its touch.
//!
//! Credentials and the endpoint come from the usual variables:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) for a
//! server other than AWS, `AWS_ALLOW_HTTP=true` for one without TLS.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{DocumentStore, Kept, StoreError, StoreResult, StoredDocument, is_sha256};

pub struct S3Store {
    client: AmazonS3,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// The store at `s3://bucket/prefix`, configured from the environment.
    pub fn from_url(url: &str) -> Result<S3Store, String> {
        S3Store::with_settings(url, &|name| std::env::var(name).ok())
    }

    /// The store at `s3://bucket/prefix`, with the variables `setting`
    /// gives (the environment's names: `AWS_ACCESS_KEY_ID`, …).
    pub fn with_settings(
        url: &str,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Store, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3://bucket/prefix address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        if let Some(key) = setting("AWS_ACCESS_KEY_ID") {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = setting("AWS_SECRET_ACCESS_KEY") {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = setting("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
        let region = setting("AWS_REGION")
            .or_else(|| setting("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        builder = builder.with_region(region);
        // AWS_ENDPOINT_URL is the name the AWS tools read; object_store's
        // own is AWS_ENDPOINT.
        if let Some(endpoint) = setting("AWS_ENDPOINT_URL").or_else(|| setting("AWS_ENDPOINT")) {
            let plain = endpoint.starts_with("http://")
                || setting("AWS_ALLOW_HTTP").is_some_and(|v| v == "true");
            builder = builder.with_endpoint(endpoint).with_allow_http(plain);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot use the S3 store {url}: {e}"))?;
        Ok(S3Store {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    fn key(&self, sha256: &str, suffix: &str) -> Path {
        let name = format!("{}/{sha256}{suffix}", &sha256[..2]);
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(self, format!("{what}: {e}"))
    }

    async fn describe_document(&self, document: &StoredDocument) -> StoreResult<()> {
        let meta = serde_json::to_vec(document).map_err(|e| self.error("description", e))?;
        self.client
            .put(&self.key(&document.sha256, ".json"), PutPayload::from(meta))
            .await
            .map_err(|e| self.error("cannot write a description", e))?;
        Ok(())
    }
}

#[async_trait]
impl DocumentStore for S3Store {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn put(&self, document: &StoredDocument, content: &[u8]) -> StoreResult<()> {
        if !is_sha256(&document.sha256) {
            return Err(self.error("refused", format!("{:?} is not a SHA-256", document.sha256)));
        }
        // The description first: a document found is described. Written
        // again when the content is there, it marks the touch.
        self.describe_document(document).await?;
        let key = self.key(&document.sha256, "");
        match self.client.head(&key).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("cannot look for a document", e)),
        }
        self.client
            .put(&key, PutPayload::from(content.to_vec()))
            .await
            .map_err(|e| self.error("cannot write a document", e))?;
        Ok(())
    }

    async fn get(&self, sha256: &str) -> StoreResult<Option<(StoredDocument, Vec<u8>)>> {
        if !is_sha256(sha256) {
            return Ok(None);
        }
        let content = match self.client.get(&self.key(sha256, "")).await {
            Ok(found) => found
                .bytes()
                .await
                .map_err(|e| self.error("cannot read a document", e))?
                .to_vec(),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("cannot read a document", e)),
        };
        let described = match self.client.get(&self.key(sha256, ".json")).await {
            Ok(found) => found.bytes().await.ok(),
            Err(_) => None,
        };
        let document = described
            .and_then(|m| serde_json::from_slice::<StoredDocument>(&m).ok())
            .unwrap_or_else(|| StoredDocument::of(&content, sha256, None));
        Ok(Some((document, content)))
    }

    async fn list_after(&self, after: &str, limit: u32) -> StoreResult<Vec<Kept>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        // Listing is in key order, and a key's hash is its last part.
        let offset = if after.is_empty() {
            prefix.clone().unwrap_or_default()
        } else {
            self.key(after, ".json")
        };
        let mut listing = self.client.list_with_offset(prefix.as_ref(), &offset);
        // By hash: when it was last touched, and its size once its content
        // is seen (a description alone is a put cut short: not kept).
        let mut found: BTreeMap<String, (i64, Option<u64>)> = BTreeMap::new();
        let complete = |found: &BTreeMap<String, (i64, Option<u64>)>| {
            found.values().filter(|(_, size)| size.is_some()).count()
        };
        while let Some(object) = listing
            .try_next()
            .await
            .map_err(|e| self.error("cannot list the documents", e))?
        {
            let name = object.location.filename().unwrap_or_default();
            let (sha256, described) = match name.strip_suffix(".json") {
                Some(sha) => (sha, true),
                None => (name, false),
            };
            if !is_sha256(sha256) || sha256 <= after {
                continue;
            }
            // A hash's two objects are listed together: a new hash once
            // `limit` are complete ends the page.
            if !found.contains_key(sha256) && complete(&found) >= limit as usize {
                break;
            }
            let entry = found.entry(sha256.to_string()).or_insert((0, None));
            entry.0 = entry.0.max(object.last_modified.timestamp_millis());
            if !described {
                entry.1 = Some(object.size);
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|(sha256, (touched_at, size))| {
                size.map(|size| Kept {
                    sha256,
                    size,
                    touched_at,
                })
            })
            .take(limit as usize)
            .collect())
    }

    async fn delete(&self, sha256: &[String]) -> StoreResult<u64> {
        let mut deleted = 0;
        for sha in sha256.iter().filter(|s| is_sha256(s)) {
            let key = self.key(sha, "");
            match self.client.head(&key).await {
                Ok(_) => {
                    self.client
                        .delete(&key)
                        .await
                        .map_err(|e| self.error("cannot delete a document", e))?;
                    deleted += 1;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("cannot look for a document", e)),
            }
            match self.client.delete(&self.key(sha, ".json")).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("cannot delete a description", e)),
            }
        }
        Ok(deleted)
    }
}
