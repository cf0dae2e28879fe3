//! The write-ahead log: an append-only file of records (one JSON document per line, each
//! prefixed by its CRC-32), written by one thread with group commit. Callers hand a batch
//! of records to [`Wal::append`] and get the answer only after the batch is on disk
//! (`fsync`); batches that arrive while a write is in progress share the next `fsync`.
//!
//! [`Wal::open`] returns every intact record for replay. A torn last line (a crash in the
//! middle of a write, never acknowledged) is cut off; a damaged line before the end is an
//! error naming the line, since acknowledged data would otherwise be lost silently.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};

type Done = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
/// Maps one record to its replacement (`None`: drop it).
type Rewriter = Box<dyn Fn(&str) -> Option<String> + Send>;

enum Job {
    Append {
        lines: Vec<String>,
        durable: bool,
        done: Option<Done>,
    },
    /// Rewrites the log through `map`: `None` drops a record, `Some` replaces it (erasure).
    Rewrite { keep: Rewriter, done: Done },
}

/// Handle to the log's writer thread. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Framed records of [`Wal::append_nowait`] not yet written.
    buffer: Arc<Mutex<String>>,
}

/// How often the writer drains the buffer of unacknowledged records.
const DRAIN_EVERY: Duration = Duration::from_millis(2);
/// Buffer size that wakes the writer at once.
const DRAIN_AT: usize = 1 << 20;

fn frame(line: &str) -> String {
    let mut s = String::with_capacity(line.len() + 10);
    frame_into(&mut s, line, crc32fast::hash(line.as_bytes()));
    s
}

/// Appends `line`'s frame (its checksum `crc`, the line, a newline) to `buf`.
fn frame_into(buf: &mut String, line: &str, crc: u32) {
    use std::fmt::Write as _;
    let _ = write!(buf, "{crc:08x} ");
    buf.push_str(line);
    buf.push('\n');
}

fn unframe(raw: &str) -> Option<&str> {
    let (crc, body) = raw.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(body.as_bytes()) == crc).then_some(body)
}

/// Reads the intact records of `path`, cutting a torn tail off the file.
fn recover(path: &Path) -> Result<Vec<String>> {
    let Ok(file) = File::open(path) else {
        return Ok(Vec::new());
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut good_len: u64 = 0;
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).at(path)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let body = buf
            .strip_suffix(b"\n")
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(unframe);
        match body {
            Some(body) => {
                out.push(body.to_string());
                good_len += n as u64;
            }
            None => {
                // damaged: acceptable only as the very last line (a torn write)
                if !reader.fill_buf().at(path)?.is_empty() {
                    return Err(Error::Contract {
                        path: path.to_path_buf(),
                        message: format!(
                            "write-ahead log line {line_no} is damaged and is not the last line; refusing to start (move the file away to start empty)"
                        ),
                    });
                }
                tracing::warn!(
                    "{}: cutting off a torn last line {line_no} (a write interrupted by a crash, never acknowledged)",
                    path.display()
                );
                let f = OpenOptions::new().write(true).open(path).at(path)?;
                f.set_len(good_len).at(path)?;
                f.sync_all().at(path)?;
                break;
            }
        }
    }
    Ok(out)
}

/// The appenders' buffer, swapped for the writer's empty `spare`: appenders go on into
/// memory already grown to a group commit's size instead of growing a new buffer from
/// nothing.
fn take(buffer: &Mutex<String>, spare: &mut String) -> String {
    let fresh = std::mem::take(spare);
    std::mem::replace(
        &mut *buffer.lock().unwrap_or_else(|e| e.into_inner()),
        fresh,
    )
}

/// Keeps a written buffer as the next spare, unless a burst grew it past a few drains.
fn recycle(spare: &mut String, mut used: String) {
    if used.capacity() <= 4 * DRAIN_AT {
        used.clear();
        *spare = used;
    }
}

fn writer(path: PathBuf, mut file: File, rx: mpsc::Receiver<Job>, buffer: Arc<Mutex<String>>) {
    let mut pending: Vec<Done> = Vec::new();
    let mut spare = String::new();
    loop {
        let first = match rx.recv_timeout(DRAIN_EVERY) {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let buf = take(&buffer, &mut spare);
                if !buf.is_empty()
                    && let Err(e) = write_and_sync(&mut file, &buf, false)
                {
                    tracing::error!("write-ahead log {}: {e}", path.display());
                }
                recycle(&mut spare, buf);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let buf = take(&buffer, &mut spare);
                let _ = write_and_sync(&mut file, &buf, true);
                return;
            }
        };
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        // records appended without waiting came first
        let mut buf = take(&buffer, &mut spare);
        let mut durable = false;
        for job in jobs {
            match job {
                Job::Append {
                    lines,
                    durable: d,
                    done,
                } => {
                    for l in &lines {
                        frame_into(&mut buf, l, crc32fast::hash(l.as_bytes()));
                    }
                    durable |= d;
                    pending.extend(done);
                }
                Job::Rewrite { keep, done } => {
                    let r = write_and_sync(&mut file, &buf, true)
                        .and_then(|_| rewrite(&path, &*keep))
                        .map(|f| file = f);
                    buf.clear();
                    let r = r.map_err(|e| e.to_string());
                    for d in pending.drain(..) {
                        d(r.clone());
                    }
                    done(r);
                }
            }
        }
        if buf.is_empty() && pending.is_empty() {
            recycle(&mut spare, buf);
            continue;
        }
        let r = write_and_sync(&mut file, &buf, durable || !pending.is_empty())
            .map_err(|e| e.to_string());
        if let Err(e) = &r {
            tracing::error!("write-ahead log {}: {e}", path.display());
        }
        for d in pending.drain(..) {
            d(r.clone());
        }
        recycle(&mut spare, buf);
    }
}

fn write_and_sync(file: &mut File, buf: &str, sync: bool) -> std::io::Result<()> {
    if !buf.is_empty() {
        file.write_all(buf.as_bytes())?;
    }
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

fn rewrite(path: &Path, keep: &dyn Fn(&str) -> Option<String>) -> std::io::Result<File> {
    let records = recover(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = path.with_extension("rewrite");
    {
        let mut f = File::create(&tmp)?;
        for r in records.iter().filter_map(|r| keep(r)) {
            f.write_all(frame(&r).as_bytes())?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

impl Wal {
    /// Opens (or creates) the log at `path`, returning the writer handle and every intact
    /// record in order.
    pub fn open(path: impl Into<PathBuf>) -> Result<(Wal, Vec<String>)> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let records = recover(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .at(&path)?;
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let buffer = Arc::new(Mutex::new(String::new()));
        let b = buffer.clone();
        let handle = std::thread::Builder::new()
            .name("baton-wal".into())
            .spawn(move || writer(p, file, rx, b))
            .map_err(|e| Error::io(&path, e))?;
        Ok((
            Wal {
                path,
                tx: Some(tx),
                writer: Some(handle),
                buffer,
            },
            records,
        ))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (one JSON document each, no newlines) and resolves once they are
    /// durable on disk.
    pub async fn append(&self, lines: Vec<String>) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Append {
            lines,
            durable: true,
            done: Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        })?;
        self.wait(rx).await
    }

    /// Appends `lines` without waiting: they are written within a few milliseconds (and
    /// fsynced with the next acknowledged batch).
    pub fn append_nowait(&self, lines: Vec<String>) -> Result<()> {
        // checksums before taking the lock that every appender shares
        let crcs: Vec<u32> = lines
            .iter()
            .map(|l| crc32fast::hash(l.as_bytes()))
            .collect();
        let size = {
            let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            for (l, crc) in lines.iter().zip(crcs) {
                frame_into(&mut b, l, crc);
            }
            b.len()
        };
        if size >= DRAIN_AT {
            self.send(Job::Append {
                lines: Vec::new(),
                durable: false,
                done: None,
            })?;
        }
        Ok(())
    }

    /// Appends and blocks until durable (for callers outside an async runtime).
    pub fn append_blocking(&self, lines: Vec<String>) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Append {
            lines,
            durable: true,
            done: Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        })?;
        rx.recv()
            .map_err(|_| self.gone())?
            .map_err(|e| Error::io(&self.path, std::io::Error::other(e)))
    }

    /// Rewrites the log through `map` (`None` drops a record, `Some` replaces it);
    /// resolves once the new file is durable. Used to erase a customer.
    pub async fn rewrite(
        &self,
        keep: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Rewrite {
            keep: Box::new(keep),
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })?;
        self.wait(rx).await
    }

    fn send(&self, job: Job) -> Result<()> {
        self.tx
            .as_ref()
            .ok_or_else(|| self.gone())?
            .send(job)
            .map_err(|_| self.gone())
    }

    fn gone(&self) -> Error {
        Error::io(
            &self.path,
            std::io::Error::other("the write-ahead log writer has stopped"),
        )
    }

    async fn wait(
        &self,
        rx: tokio::sync::oneshot::Receiver<std::result::Result<(), String>>,
    ) -> Result<()> {
        rx.await
            .map_err(|_| self.gone())?
            .map_err(|e| Error::io(&self.path, std::io::Error::other(e)))
    }
}

impl Drop for Wal {
    /// Stops the writer after it has written (and fsynced) everything buffered.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_replay_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal").join("log");
        {
            let (wal, old) = Wal::open(&path).unwrap();
            assert!(old.is_empty());
            wal.append_blocking(vec!["{\"a\":1}".into(), "{\"a\":2}".into()])
                .unwrap();
            wal.append_nowait(vec!["{\"a\":3}".into()]).unwrap();
            wal.append_blocking(vec![]).unwrap();
        }
        // a torn write: half a line at the end
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"deadbeef {\"a\":").unwrap();
        drop(f);
        let (wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records, ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        wal.append_blocking(vec!["{\"a\":4}".into()]).unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[3], "{\"a\":4}");
    }

    #[test]
    fn damage_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, format!("00000000 {{}}\n{}", frame("{}"))).unwrap();
        let e = Wal::open(&path).unwrap_err().to_string();
        assert!(e.contains("line 1 is damaged"), "{e}");
    }

    #[tokio::test]
    async fn rewrite_maps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (wal, _) = Wal::open(&path).unwrap();
        wal.append(vec!["keep 1".into(), "drop".into(), "keep 2".into()])
            .await
            .unwrap();
        wal.rewrite(|r| r.starts_with("keep").then(|| r.replace("keep", "kept")))
            .await
            .unwrap();
        wal.append(vec!["keep 3".into()]).await.unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records, ["kept 1", "kept 2", "keep 3"]);
    }
}
