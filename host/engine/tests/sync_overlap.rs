//! fdatasyncs of one journal never overlap, rotation included: when two
//! overlap and one fails, Linux may report the error to only one of them, so
//! the other would acknowledge records on the word of a sync that lost them.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mini_engine::fs::{FileRef, FileSystem, FsFile, StdFs};
use mini_engine::{Journal, JournalOptions};

#[derive(Debug, Default)]
struct Overlap {
    in_flight: AtomicUsize,
    max: AtomicUsize,
    syncs: AtomicUsize,
}

/// The real file system; every fdatasync is counted while it runs and made
/// a little longer, so overlapping syncs would be seen.
#[derive(Debug, Clone, Default)]
struct OverlapFs(Arc<Overlap>);

#[derive(Debug)]
struct OverlapFile(FileRef, Arc<Overlap>);

impl FsFile for OverlapFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let now = self.1.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.1.max.fetch_max(now, Ordering::SeqCst);
        self.1.syncs.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        let result = self.0.sync_data();
        self.1.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
}

impl OverlapFs {
    fn wrap(&self, file: FileRef) -> FileRef {
        Arc::new(OverlapFile(file, self.0.clone()))
    }
}

impl FileSystem for OverlapFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(StdFs.open_read(path)?))
    }
    fn open_write(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(StdFs.open_write(path)?))
    }
    fn create_new(&self, path: &Path) -> io::Result<FileRef> {
        Ok(self.wrap(StdFs.create_new(path)?))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
}

#[test]
fn syncs_never_overlap_even_while_rotating() {
    let dir = tempfile::tempdir().unwrap();
    let fs = OverlapFs::default();
    let options = JournalOptions {
        segment_size: 2048,
        fs: Arc::new(fs.clone()),
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(dir.path(), options).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let journal = journal.clone();
            s.spawn(move || {
                for i in 0..60 {
                    journal
                        .append(&format!(
                            "{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}",
                            "p".repeat(100)
                        ))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(journal.last_seq(), 480);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert!(segments > 10, "the test rotates ({segments} segments)");
    assert!(fs.0.syncs.load(Ordering::SeqCst) > 10);
    assert_eq!(
        fs.0.max.load(Ordering::SeqCst),
        1,
        "two fdatasyncs of one journal ran at the same time"
    );
}
