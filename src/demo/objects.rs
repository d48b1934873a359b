//! Writing objects into `files/`: a few writer threads fed by a bounded channel while the
//! main thread fills the database.
//!
//! An object's bytes depend only on the seed and its contentID (never on thread timing or
//! chunk size), so two runs with one seed produce byte-identical object stores.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use crossbeam_channel::Receiver;

use super::rng::ByteStream;

/// The 32 shard folders, named by a contentID's first character.
pub(crate) const SHARDS: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Largest buffer a writer fills at once.
const CHUNK: usize = 1 << 20;

/// One object to write.
pub(crate) struct Job {
    pub path: PathBuf,
    pub key: u64,
    pub len: u64,
    pub magic: &'static [u8],
}

/// The key of an object's byte stream: the seed and its contentID.
pub(crate) fn object_key(seed: u64, content_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(content_id.as_bytes(), seed)
}

/// Length of a tiny object (16-64 bytes), fixed by its key.
pub(crate) fn tiny_len(key: u64) -> u64 {
    16 + super::rng::mix64(key ^ 0x7157) % 49
}

/// Length of a folder's object (8-40 bytes): folders have objects on the device too.
pub(crate) fn folder_object_len(key: u64) -> u64 {
    8 + super::rng::mix64(key ^ 0xf01d) % 33
}

/// `files/<first char>/<contentID>`.
pub(crate) fn sharded_path(files: &Path, content_id: &str) -> PathBuf {
    files.join(&content_id[..1]).join(content_id)
}

/// Creates the 32 shard folders once, before any object is written.
pub(crate) fn create_shards(files: &Path) -> anyhow::Result<()> {
    for c in SHARDS {
        let dir = files.join((*c as char).to_string());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Writes one object: `len` bytes of its stream, starting with `magic` when it fits.
pub(crate) fn write_object(job: &Job, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let fail = || format!("cannot write demo object {}", job.path.display());
    let mut file = File::create(&job.path).with_context(fail)?;
    let mut stream = ByteStream::new(job.key);
    let mut left = job.len;
    let mut first = true;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        buf.resize(n, 0);
        stream.fill(buf);
        if first && job.magic.len() <= n {
            buf[..job.magic.len()].copy_from_slice(job.magic);
        }
        first = false;
        file.write_all(buf).with_context(fail)?;
        left -= n as u64;
    }
    file.flush().with_context(fail)
}

/// A writer thread: writes jobs until the channel closes; stops at the first error.
pub(crate) fn worker(jobs: Receiver<Job>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    for job in jobs {
        write_object(&job, &mut buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_their_length_and_magic_and_are_repeatable() {
        let t = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        for (i, len) in [0u64, 3, 16, 1000, CHUNK as u64 + 5]
            .into_iter()
            .enumerate()
        {
            let path = t.path().join(format!("o{i}"));
            let job = Job {
                path: path.clone(),
                key: 5,
                len,
                magic: b"%PDF",
            };
            write_object(&job, &mut buf).unwrap();
            let a = std::fs::read(&path).unwrap();
            assert_eq!(a.len() as u64, len);
            if len >= 4 {
                assert_eq!(&a[..4], b"%PDF");
            }
            write_object(&job, &mut buf).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), a);
        }
    }

    #[test]
    fn tiny_and_folder_lengths_stay_in_range() {
        for k in 0..1000 {
            assert!((16..=64).contains(&tiny_len(k)));
            assert!((8..=40).contains(&folder_object_len(k)));
        }
    }
}
