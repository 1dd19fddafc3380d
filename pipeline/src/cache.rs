//! Cache keys and artifact digests (SHA-256), and reuse of cached artifacts.
//!
//! A step instance's cache key is the SHA-256 of a canonical JSON document holding everything
//! that decides its result: its kind, the argv, environment and plug-in `spec` after
//! substitution, its image and its declared outputs. Input artifacts are substituted by the
//! digest of their content instead of their path, because the same data sits at a different path
//! in every run; a directory's digest covers the sorted relative names and contents of its files.
//! The step's name is not part of the key: two steps doing the same thing share results, as in
//! Kubeflow Pipelines' execution cache.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The digest of a file's or a directory's content, as `sha256:<hex>`.
pub fn digest_path(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hash_path(path, Path::new(""), &mut hasher)?;
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

/// The cache key of a canonical description of a step instance.
pub fn cache_key(material: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(material, &mut canonical);
    hex(&Sha256::digest(canonical.as_bytes()))
}

/// JSON with object keys sorted at every level, whatever order the map keeps (another crate
/// may turn on serde_json's `preserve_order`).
fn write_canonical(value: &serde_json::Value, output: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|left, right| left.0.cmp(right.0));
            output.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                output.push_str(&serde_json::Value::String(key.clone()).to_string());
                output.push(':');
                write_canonical(value, output);
            }
            output.push('}');
        }
        serde_json::Value::Array(values) => {
            output.push('[');
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                write_canonical(value, output);
            }
            output.push(']');
        }
        scalar => output.push_str(&scalar.to_string()),
    }
}

/// Copies a cached artifact (file or directory tree) to `destination`, replacing what is there.
pub fn copy_artifact(source: &Path, destination: &Path) -> std::io::Result<()> {
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let metadata = std::fs::metadata(source)?;
    if metadata.is_dir() {
        if destination.exists() {
            std::fs::remove_dir_all(destination)?;
        }
        std::fs::create_dir_all(destination)?;
        for entry in sorted_entries(source)? {
            copy_artifact(
                &entry,
                &destination.join(entry.file_name().unwrap_or_default()),
            )?;
        }
        Ok(())
    } else {
        std::fs::copy(source, destination).map(|_| ())
    }
}

fn hash_path(path: &Path, relative: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        hasher.update(b"dir\0");
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        for entry in sorted_entries(path)? {
            let name = entry.file_name().unwrap_or_default().to_owned();
            hash_path(&entry, &relative.join(name), hasher)?;
        }
    } else {
        hasher.update(b"file\0");
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(b"\0");
        let mut file = std::fs::File::open(path)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        hasher.update(b"\0");
    }
    Ok(())
}

fn sorted_entries(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(directory)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

/// Bytes as lowercase hexadecimal (a digest's usual spelling).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            // Writing to a String cannot fail.
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_content_not_location() {
        let directory = tempfile::tempdir().unwrap();
        let first = directory.path().join("a");
        let second = directory.path().join("b");
        for root in [&first, &second] {
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::write(root.join("x.txt"), "x").unwrap();
            std::fs::write(root.join("sub/y.txt"), "y").unwrap();
        }
        assert_eq!(digest_path(&first).unwrap(), digest_path(&second).unwrap());
        std::fs::write(second.join("sub/y.txt"), "changed").unwrap();
        assert_ne!(digest_path(&first).unwrap(), digest_path(&second).unwrap());
        assert_eq!(
            digest_path(&first.join("x.txt")).unwrap(),
            digest_path(&second.join("x.txt")).unwrap()
        );
        let copy = directory.path().join("copy");
        copy_artifact(&first, &copy).unwrap();
        assert_eq!(digest_path(&first).unwrap(), digest_path(&copy).unwrap());
    }

    #[test]
    fn keys_ignore_object_key_order() {
        let left = serde_json::json!({"a": 1, "b": [1, 2]});
        let right: serde_json::Value = serde_json::from_str(r#"{"b": [1, 2], "a": 1}"#).unwrap();
        assert_eq!(cache_key(&left), cache_key(&right));
        assert_eq!(cache_key(&left).len(), 64);
    }
}
