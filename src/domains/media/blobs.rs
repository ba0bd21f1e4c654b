//! Content-addressed blobs under `data/media/`: a file's name is the SHA-256 of its bytes, so
//! the same bytes are stored once, and a name always means the same content.
//!
//! Layout: `blobs/ab/abcdef…` (the first two hex digits fan the files out over 256 folders),
//! and `tmp/` for uploads being received (emptied at start: whatever is there was cut off by a
//! crash).
//!
//! Crash safety, with the records in redb:
//! - a blob is made durable (file fsynced, renamed into place, folder fsynced) *before* the
//!   record naming it commits, so no committed record names a missing file;
//! - a blob that lost its record (the crash came between, or the record was deleted) is
//!   collected by [`Blobs::collect`], and only once it is older than a grace period: an upload
//!   that finds its bytes already stored touches the file first, under the same lock as the
//!   collector's check-and-delete, so a blob about to be named again is never collected.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::core::error::{AppError, AppResult};

pub struct Blobs {
    root: PathBuf,
    /// Held while a blob is published (moved in or touched) and while the collector checks
    /// and deletes one: the two never interleave on a name.
    publish: parking_lot::Mutex<()>,
}

/// A file being received: its bytes go to `tmp/` while they are hashed and counted.
pub struct Incoming {
    path: PathBuf,
    file: std::fs::File,
    hasher: Sha256,
    pub len: u64,
    /// The first bytes, for the magic-byte check.
    pub head: Vec<u8>,
}

/// Bytes of a file kept for sniffing its type.
const HEAD_BYTES: usize = 64;

impl Incoming {
    pub fn write(&mut self, chunk: &[u8]) -> AppResult<()> {
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        self.file.write_all(chunk).map_err(io)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Published files were renamed away; anything left is a refused or failed upload.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io(e: std::io::Error) -> AppError {
    AppError::internal(format!("media storage: {e}"))
}

/// A SHA-256 as the lower-case hex that names its blob.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name bytes would be stored under.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn is_blob_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Blobs {
    /// Opens (creating) the store under `root`, emptying `tmp/`.
    pub fn open(root: &Path) -> AppResult<Blobs> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io)?;
        }
        std::fs::create_dir_all(&tmp).map_err(io)?;
        std::fs::create_dir_all(root.join("blobs")).map_err(io)?;
        Ok(Blobs {
            root: root.to_owned(),
            publish: parking_lot::Mutex::new(()),
        })
    }

    /// Where the blob named `sha` is (whether or not it exists).
    pub fn path(&self, sha: &str) -> PathBuf {
        self.root.join("blobs").join(&sha[..2]).join(sha)
    }

    /// A new file in `tmp/` to receive an upload into.
    pub fn incoming(&self) -> AppResult<Incoming> {
        let path = self
            .root
            .join("tmp")
            .join(crate::core::ids::random_token(16));
        let file = std::fs::File::create_new(&path).map_err(io)?;
        Ok(Incoming {
            path,
            file,
            hasher: Sha256::new(),
            len: 0,
            head: Vec::new(),
        })
    }

    /// Makes a received file a durable blob; its name. Bytes already stored are not stored
    /// again (the existing file is touched, so the collector leaves it).
    pub fn publish(&self, incoming: Incoming) -> AppResult<String> {
        let Incoming {
            ref path,
            ref file,
            ref hasher,
            ..
        } = incoming;
        let sha = hex(&hasher.clone().finalize());
        file.sync_all().map_err(io)?;
        self.publish_file(path, &sha)?;
        Ok(sha)
    }

    /// Stores `bytes` (a variant made here) as a blob; its name.
    pub fn put(&self, bytes: &[u8]) -> AppResult<String> {
        let mut incoming = self.incoming()?;
        incoming.write(bytes)?;
        self.publish(incoming)
    }

    fn publish_file(&self, tmp: &Path, sha: &str) -> AppResult<()> {
        let target = self.path(sha);
        let folder = target.parent().expect("a blob path has a folder");
        std::fs::create_dir_all(folder).map_err(io)?;
        let _held = self.publish.lock();
        if target.exists() {
            let f = std::fs::File::options()
                .write(true)
                .open(&target)
                .map_err(io)?;
            f.set_modified(SystemTime::now()).map_err(io)?;
            return Ok(());
        }
        std::fs::rename(tmp, &target).map_err(io)?;
        // The rename is durable only once the folder is.
        std::fs::File::open(folder)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// Every blob's name with its age.
    fn all(&self) -> AppResult<Vec<(String, Duration)>> {
        let mut out = Vec::new();
        let now = SystemTime::now();
        for folder in std::fs::read_dir(self.root.join("blobs")).map_err(io)? {
            let folder = folder.map_err(io)?;
            if !folder.file_type().map_err(io)?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(folder.path()).map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_blob_name(&name) {
                    continue;
                }
                let modified = entry.metadata().and_then(|m| m.modified()).map_err(io)?;
                out.push((name, now.duration_since(modified).unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// Every blob's name.
    pub fn names(&self) -> AppResult<Vec<String>> {
        Ok(self.all()?.into_iter().map(|(n, _)| n).collect())
    }

    /// Deletes every blob older than `grace` that `referenced` (read *after* this call lists
    /// the files: see the module's note) does not name; how many went and their bytes.
    pub fn collect(
        &self,
        grace: Duration,
        referenced: impl FnOnce() -> AppResult<HashSet<String>>,
    ) -> AppResult<(u64, u64)> {
        let old: Vec<String> = self
            .all()?
            .into_iter()
            .filter(|(_, age)| *age >= grace)
            .map(|(name, _)| name)
            .collect();
        if old.is_empty() {
            return Ok((0, 0));
        }
        let referenced = referenced()?;
        let (mut count, mut bytes) = (0, 0);
        for name in old.into_iter().filter(|n| !referenced.contains(n)) {
            let path = self.path(&name);
            let _held = self.publish.lock();
            // Touched since it was listed: an upload is naming it again.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            if age < grace {
                continue;
            }
            std::fs::remove_file(&path).map_err(io)?;
            count += 1;
            bytes += meta.len();
        }
        Ok((count, bytes))
    }

    /// Whether the blob exists (for checks and tests).
    pub fn exists(&self, sha: &str) -> bool {
        is_blob_name(sha) && self.path(sha).exists()
    }
}
