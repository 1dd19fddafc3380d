//! Artifacts in object storage: pipeline steps' output artifacts and trials' output logs are
//! uploaded when the step or trial ends, content-addressed, and read back from there.
//!
//! An object's key is `<prefix>/sha256/<hex digest of its bytes>`, so the same bytes are kept
//! once whoever produced them (a cached step's artifact is its source's). A directory artifact
//! is kept as a tar archive built in a fixed order with fixed metadata, so the same tree gives
//! the same archive and the same key. The store ([`sextant_store::artifacts`]) keeps which
//! names refer to which object; an object is deleted with the last name referring to it.
//!
//! The `object_store` crate talks to the storage: a local directory (`file:///...`, the
//! default, beside the server's data) or any S3-compatible service (`s3://bucket/prefix`, with
//! the usual `AWS_*` environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`). Its 0.12 line is used because it shares
//! the HTTP client (reqwest 0.12, rustls with ring) the rest of the workspace already builds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use sextant_store::{ArtifactOwner, Store, StoredArtifact};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Where artifacts go when `--artifacts` is not given: `<data dir>/artifacts`.
pub const DEFAULT_DIR: &str = "artifacts";

/// Why an artifact could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `--artifacts` names no storage this server can use.
    #[error("--artifacts {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object storage refused or failed.
    #[error("object storage {location}: {source}")]
    Storage {
        /// The storage and the object's key.
        location: String,
        /// Its error.
        #[source]
        source: object_store::Error,
    },
    /// A produced file could not be read, or an archive not built.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not record or forget a name.
    #[error(transparent)]
    Store(#[from] sextant_store::Error),
}

/// The server's artifact storage.
pub(crate) struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The URL, for messages.
    url: String,
    /// Where directory archives are built before they are uploaded.
    staging: PathBuf,
    /// Naming an object and forgetting names (then deleting the objects no name refers to)
    /// happen one at a time, so an object is never deleted under a name being given to it.
    naming: tokio::sync::Mutex<()>,
    /// How many objects have been deleted (under `naming`): an upload made before the lock
    /// still stands if none was deleted since.
    deletions: AtomicU64,
}

/// A file (or a directory's archive) ready to upload, with its digest.
struct Staged {
    path: PathBuf,
    digest: String,
    size: u64,
    archive: bool,
    /// Removes the archive when dropped.
    _archive_file: Option<tempfile::TempPath>,
}

impl ArtifactStore {
    /// Opens the storage `url` names: `file:///ABSOLUTE/DIR` (created if missing) or
    /// `s3://BUCKET[/PREFIX]`. Archives are staged under `staging`.
    pub(crate) fn open(url: &str, staging: PathBuf) -> Result<ArtifactStore, ArtifactError> {
        let refused = |reason: &str| ArtifactError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        const EXPECTED: &str = "expected file:///ABSOLUTE/DIR or s3://BUCKET[/PREFIX]";
        let parsed =
            reqwest::Url::parse(url).map_err(|error| refused(&format!("{error}; {EXPECTED}")))?;
        let (objects, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            // `file:relative` parses as `/relative`: only the spelled-out absolute form is taken.
            "file" if url.starts_with("file:///") => {
                let dir = parsed.to_file_path().map_err(|()| refused(EXPECTED))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|error| refused(&format!("cannot create the directory: {error}")))?;
                let local = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|error| refused(&error.to_string()))?;
                (Arc::new(local), ObjectPath::default())
            }
            "s3" if parsed.host_str().is_some_and(|bucket| !bucket.is_empty()) => {
                let s3 = AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|error| refused(&error.to_string()))?;
                let prefix = ObjectPath::parse(parsed.path().trim_matches('/'))
                    .map_err(|error| refused(&error.to_string()))?;
                (Arc::new(s3), prefix)
            }
            _ => return Err(refused(EXPECTED)),
        };
        Ok(ArtifactStore {
            objects,
            prefix,
            url: url.to_string(),
            staging,
            naming: tokio::sync::Mutex::default(),
            deletions: AtomicU64::new(0),
        })
    }

    /// Opens the local directory `dir` (relative to the working directory, or absolute).
    pub(crate) fn open_dir(dir: &Path, staging: PathBuf) -> Result<ArtifactStore, ArtifactError> {
        let refused = |reason: String| ArtifactError::Url {
            url: dir.display().to_string(),
            reason,
        };
        let absolute = std::path::absolute(dir).map_err(|error| refused(error.to_string()))?;
        let url = reqwest::Url::from_directory_path(&absolute)
            .map_err(|()| refused("not a directory path".to_string()))?;
        ArtifactStore::open(url.as_str(), staging)
    }

    fn key(&self, digest: &str) -> ObjectPath {
        self.prefix.child("sha256").child(digest)
    }

    fn storage_error(&self, digest: &str, source: object_store::Error) -> ArtifactError {
        ArtifactError::Storage {
            location: format!("{} sha256/{digest}", self.url),
            source,
        }
    }

    /// Uploads `source` (a file, or a directory as a tar archive) and names it `name` for
    /// `owner`, replacing what that name referred to before.
    pub(crate) async fn keep(
        &self,
        store: &Store,
        owner: ArtifactOwner<'_>,
        name: &str,
        source: &Path,
    ) -> Result<StoredArtifact, ArtifactError> {
        let staged = stage(source.to_path_buf(), self.staging.clone()).await?;
        let deletions = self.deletions.load(Ordering::Acquire);
        self.upload(&staged).await?;
        let artifact = StoredArtifact {
            name: name.to_string(),
            digest: staged.digest.clone(),
            size: staged.size,
            archive: staged.archive,
        };
        let _naming = self.naming.lock().await;
        // The last name of these bytes may have gone since the upload, taking the object.
        if self.deletions.load(Ordering::Acquire) != deletions {
            self.upload(&staged).await?;
        }
        if let Some(orphaned) = store.put_artifact(owner, &artifact).await? {
            self.delete(&orphaned).await;
        }
        Ok(artifact)
    }

    /// Uploads a staged file unless its object is already there.
    async fn upload(&self, staged: &Staged) -> Result<(), ArtifactError> {
        let key = self.key(&staged.digest);
        match self.objects.head(&key).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(self.storage_error(&staged.digest, error)),
        }
        let mut file = tokio::fs::File::open(&staged.path)
            .await
            .map_err(|source| ArtifactError::Read {
                path: staged.path.clone(),
                source,
            })?;
        let mut writer = BufWriter::new(self.objects.clone(), key);
        let copied = tokio::io::copy(&mut file, &mut writer).await;
        let finished = match copied {
            Ok(_) => writer.shutdown().await,
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        };
        finished.map_err(|source| {
            self.storage_error(
                &staged.digest,
                object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(source),
                },
            )
        })
    }

    async fn get(&self, digest: &str) -> Result<object_store::GetResult, ArtifactError> {
        self.objects
            .get(&self.key(digest))
            .await
            .map_err(|error| self.storage_error(digest, error))
    }

    /// The bytes of the object `digest`, as a response body.
    pub(crate) async fn read(&self, digest: &str) -> Result<Body, ArtifactError> {
        let result = self.get(digest).await?;
        Ok(Body::from_stream(
            result
                .into_stream()
                .map_err(|error| std::io::Error::other(error.to_string())),
        ))
    }

    /// The bytes of the object `digest`, whole.
    pub(crate) async fn read_bytes(
        &self,
        digest: &str,
    ) -> Result<axum::body::Bytes, ArtifactError> {
        self.get(digest)
            .await?
            .bytes()
            .await
            .map_err(|error| self.storage_error(digest, error))
    }

    /// Forgets a run's artifacts and deletes the objects no name refers to any more.
    pub(crate) async fn forget_run(
        &self,
        store: &Store,
        run_id: &str,
    ) -> Result<(), ArtifactError> {
        let _naming = self.naming.lock().await;
        for digest in store.delete_run_artifacts(run_id).await? {
            self.delete(&digest).await;
        }
        Ok(())
    }

    /// Forgets an experiment's trials' artifacts and deletes the objects no name refers to any
    /// more.
    pub(crate) async fn forget_experiment(
        &self,
        store: &Store,
        experiment: &str,
    ) -> Result<(), ArtifactError> {
        let _naming = self.naming.lock().await;
        for digest in store.delete_experiment_artifacts(experiment).await? {
            self.delete(&digest).await;
        }
        Ok(())
    }

    /// Deletes an object no name refers to. A failure leaves an unreferenced object behind,
    /// which costs space but no correctness, so it is logged rather than returned.
    async fn delete(&self, digest: &str) {
        self.deletions.fetch_add(1, Ordering::AcqRel);
        match self.objects.delete(&self.key(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(error = %self.storage_error(digest, error), "cannot delete an unreferenced artifact");
            }
        }
    }
}

/// Hashes a file, or archives a directory and hashes the archive.
async fn stage(source: PathBuf, staging: PathBuf) -> Result<Staged, ArtifactError> {
    tokio::task::spawn_blocking(move || {
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Read { path, source }
        };
        let metadata = std::fs::metadata(&source).map_err(read_error(&source))?;
        let (path, archive_file) = if metadata.is_dir() {
            std::fs::create_dir_all(&staging).map_err(read_error(&staging))?;
            let file = tempfile::NamedTempFile::new_in(&staging).map_err(read_error(&staging))?;
            let (file, path) = file.into_parts();
            write_archive(&source, file).map_err(read_error(&source))?;
            (path.to_path_buf(), Some(path))
        } else {
            (source.clone(), None)
        };
        let (digest, size) = sha256_of(&path).map_err(read_error(&path))?;
        Ok(Staged {
            path,
            digest,
            size,
            archive: metadata.is_dir(),
            _archive_file: archive_file,
        })
    })
    .await
    .unwrap_or_else(|panic| {
        Err(ArtifactError::Read {
            path: PathBuf::new(),
            source: std::io::Error::other(panic.to_string()),
        })
    })
}

/// The SHA-256 (lowercase hex) and size of a file's bytes.
fn sha256_of(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((format!("{:x}", hasher.finalize()), size))
}

/// Writes `dir` as a tar archive: entries in name order, with fixed times, owners and modes
/// (tar's deterministic header mode), symbolic links kept as links (never followed out of the
/// directory).
fn write_archive(dir: &Path, file: std::fs::File) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let mut entries = std::fs::read_dir(dir.join(&relative))?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<std::io::Result<Vec<_>>>()?;
        entries.sort();
        let mut directories = Vec::new();
        for name in entries {
            let relative = relative.join(name);
            let path = dir.join(&relative);
            if std::fs::symlink_metadata(&path)?.is_dir() {
                builder.append_dir(&relative, &path)?;
                directories.push(relative);
            } else {
                builder.append_path_with_name(&path, &relative)?;
            }
        }
        // Popped from the end: pushed in reverse, they are entered in name order.
        pending.extend(directories.into_iter().rev());
    }
    std::io::Write::flush(&mut builder.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_archives_to_the_same_bytes_whatever_its_files_times() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("b/c")).unwrap();
        std::fs::write(tree.join("a.txt"), "alpha").unwrap();
        std::fs::write(tree.join("b/c/d.txt"), "delta").unwrap();
        let first = dir.path().join("first.tar");
        write_archive(&tree, std::fs::File::create(&first).unwrap()).unwrap();
        // Touch a file: a new modification time, the same content.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(tree.join("a.txt"), "alpha").unwrap();
        let second = dir.path().join("second.tar");
        write_archive(&tree, std::fs::File::create(&second).unwrap()).unwrap();
        assert_eq!(sha256_of(&first).unwrap(), sha256_of(&second).unwrap());

        let mut names = Vec::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&first).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            names.push((name, text));
        }
        assert_eq!(
            names,
            [
                ("a.txt".to_string(), "alpha".to_string()),
                ("b".to_string(), String::new()),
                ("b/c".to_string(), String::new()),
                ("b/c/d.txt".to_string(), "delta".to_string()),
            ]
        );
        // Other content, another digest.
        std::fs::write(tree.join("b/c/d.txt"), "Delta").unwrap();
        let third = dir.path().join("third.tar");
        write_archive(&tree, std::fs::File::create(&third).unwrap()).unwrap();
        assert_ne!(sha256_of(&first).unwrap(), sha256_of(&third).unwrap());
    }

    #[test]
    fn sha256_of_a_file_is_its_bytes_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
    }

    #[test]
    fn only_file_and_s3_urls_open() {
        let staging = PathBuf::from("/tmp");
        for url in [
            "gs://bucket/x",
            "http://example.com/x",
            "not a url",
            "file:relative",
            "s3:///no-bucket",
        ] {
            assert!(
                matches!(
                    ArtifactStore::open(url, staging.clone()),
                    Err(ArtifactError::Url { .. })
                ),
                "{url}"
            );
        }
    }
}
