//! The event journal on disk: every event as one JSON line in `state_dir/journal/`, so that
//! the history outlives restarts and `weiche events --since` can read it while weiche is down.
//!
//! This module owns those files: appending (on a task of its own, one fsync per batch),
//! rotation within `events_keep`, and reading back. It never makes anyone wait: the publisher
//! hands events over an unbounded channel and goes on. A disk that fails (full, read-only, a
//! file-size limit) costs the journal, never an answer or a failover: writing stops, is shown
//! once as an event (`journal_failed`), by the gauge `weiche_journal_persisted{dir}` and in
//! `/status`, is tried again every [`RETRY`], and resumes (`journal_resumed`) with what waited
//! meanwhile, up to [`PENDING_MAX`] events.
//!
//! Files: `events-NNNNNNNN.jsonl`, numbered in the order they were started. Each holds at most
//! an eighth of `events_keep` (a segment; a single line may exceed it). Once the segments
//! together hold more than `events_keep`, the oldest are deleted. A line that is not an event
//! (the last one torn by a crash or a full disk) is skipped with a warning; nothing before or
//! after it is lost, and a start cuts a torn last line off so that appending goes on cleanly.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::ops::events::JournalStatus;
use crate::ops::events::{Event, EventKind, KEEP};

/// The journal's folder inside `state_dir`.
pub const DIR: &str = "journal";

/// How many segments `events_keep` is split into: the history kept is at least 7/8 of it.
const SEGMENTS: u64 = 8;

/// How soon a failed write is tried again when no new event comes to write.
pub const RETRY: Duration = Duration::from_secs(1);

/// The most events kept in memory for the journal while it cannot be written; beyond this the
/// oldest are dropped (and counted in `weiche_journal_lost_events_total`).
pub const PENDING_MAX: usize = 10_000;

/// Where the journal lives and how much of it is kept.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// The most bytes all segments together hold.
    pub keep: u64,
}

/// One file of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub number: u64,
    pub path: PathBuf,
    pub len: u64,
}

impl Layout {
    pub fn in_state_dir(state_dir: &Path, keep: u64) -> Layout {
        Layout { dir: state_dir.join(DIR), keep }
    }

    /// The most bytes one segment takes before the next is started.
    pub fn segment_size(&self) -> u64 {
        (self.keep / SEGMENTS).max(1)
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("events-{number:08}.jsonl"))
    }

    /// The segments on disk, oldest first (none if the folder does not exist).
    pub fn segments(&self) -> io::Result<Vec<Segment>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) =
                name.to_str().and_then(|n| n.strip_prefix("events-")?.strip_suffix(".jsonl")?.parse::<u64>().ok())
            else {
                continue;
            };
            let meta = entry.metadata()?;
            if meta.is_file() {
                found.push(Segment { number, path: entry.path(), len: meta.len() });
            }
        }
        found.sort_by_key(|s| s.number);
        Ok(found)
    }
}

/// A line of the journal that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The last line has no newline: a write was cut short (a crash, a full disk), or is in
    /// progress. `at` is its byte offset, `len` its length.
    Torn { file: PathBuf, at: u64, len: usize },
    /// A whole line that does not read as an event.
    Bad { file: PathBuf, line: usize, error: String },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::Torn { file, at, len } => write!(
                f,
                "{}: skipped a torn last line ({len} bytes at offset {at}): a crash or a full disk cut it short",
                file.display()
            ),
            Skipped::Bad { file, line, error } => {
                write!(f, "{}:{line}: skipped a line that is not an event ({error})", file.display())
            }
        }
    }
}

/// The events in `text` (one segment's bytes, read from `file`), oldest first, and the lines
/// that were skipped.
pub fn parse(file: &Path, text: &[u8]) -> (Vec<Event>, Vec<Skipped>) {
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    let mut at = 0usize;
    let mut line = 0usize;
    while at < text.len() {
        line += 1;
        let Some(end) = text[at..].iter().position(|&b| b == b'\n').map(|n| at + n) else {
            skipped.push(Skipped::Torn { file: file.to_path_buf(), at: at as u64, len: text.len() - at });
            break;
        };
        let bytes = &text[at..end];
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Event>(bytes) {
                Ok(e) if e.kind.is_some() => events.push(e),
                Ok(_) => skipped.push(Skipped::Bad { file: file.to_path_buf(), line, error: "no kind".into() }),
                Err(e) => skipped.push(Skipped::Bad { file: file.to_path_buf(), line, error: e.to_string() }),
            }
        }
        at = end + 1;
    }
    (events, skipped)
}

/// How `lines` (their lengths in bytes) are spread over segments, none above `segment` bytes
/// unless a line alone is: the first count goes into the current segment, which holds
/// `current` bytes already (it may be 0), each further one into a new segment.
pub fn split(current: u64, segment: u64, lines: &[usize]) -> Vec<usize> {
    let mut groups = vec![0usize];
    let mut size = current;
    for &len in lines {
        let len = len as u64;
        if size > 0 && size + len > segment {
            groups.push(0);
            size = 0;
        }
        *groups.last_mut().expect("one group at least") += 1;
        size += len;
    }
    groups
}

/// How many of the oldest segments (their sizes, oldest first; the last is the one written to)
/// must be deleted for the rest to hold at most `keep` bytes. The newest always stays.
pub fn to_delete(sizes: &[u64], keep: u64) -> usize {
    let mut total: u64 = sizes.iter().sum();
    let mut n = 0;
    while total > keep && n + 1 < sizes.len() {
        total -= sizes[n];
        n += 1;
    }
    n
}

/// The journal read back at start.
#[derive(Debug, Default)]
pub struct Restored {
    /// The newest events (at most [`KEEP`]), oldest first.
    pub events: Vec<Event>,
    /// What was skipped (each is logged as a warning).
    pub skipped: Vec<Skipped>,
}

/// Reads the newest events back at start, logging a warning for each line skipped, and cuts a
/// torn last line off the newest segment so that appending goes on from a whole line.
pub fn restore(layout: &Layout) -> Restored {
    let segments = match layout.segments() {
        Ok(s) => s,
        Err(e) => {
            warn!(dir = %layout.dir.display(), error = %e, "cannot read the event journal; starting without its history");
            return Restored::default();
        }
    };
    let mut restored = Restored::default();
    let mut newest = true;
    for seg in segments.iter().rev() {
        let text = match read_segment(&seg.path) {
            Ok(t) => t,
            Err(e) => {
                warn!(file = %seg.path.display(), error = %e, "cannot read a journal segment; its events are skipped");
                continue;
            }
        };
        let (events, skipped) = parse(&seg.path, &text);
        for s in &skipped {
            warn!("event journal: {s}");
            if let Skipped::Torn { at, .. } = s
                && newest
                && let Err(e) = std::fs::OpenOptions::new().write(true).open(&seg.path).and_then(|f| f.set_len(*at))
            {
                warn!(file = %seg.path.display(), error = %e, "cannot cut the torn line off; appending after it");
            }
        }
        newest = false;
        restored.skipped.extend(skipped);
        let mut older = events;
        older.append(&mut restored.events);
        restored.events = older;
        if restored.events.len() >= KEEP {
            break;
        }
    }
    let extra = restored.events.len().saturating_sub(KEEP);
    restored.events.drain(..extra);
    if let Some(last) = restored.events.last() {
        info!(events = restored.events.len(), last_seq = last.seq, dir = %layout.dir.display(), "event journal read back");
    }
    restored
}

/// Every event in the journal at or after `since`, oldest first, and the lines skipped. Reads
/// the newest segments first and stops at one that begins before `since`.
/// A segment's bytes: a regular file no bigger than any journal may be (a FIFO named like a
/// segment would hang the reader).
fn read_segment(path: &Path) -> Result<Vec<u8>, String> {
    // Bounded by the largest journal any `events_keep` allows, not the current one: segments
    // written under a larger setting (or read without weiche.toml) are still read.
    crate::config::bounded::read(path, crate::config::MAX_EVENTS_KEEP, "the largest events_keep")
        .map_err(|e| format!("{} {e}", path.display()))
}

pub fn read_since(layout: &Layout, since: SystemTime) -> io::Result<(Vec<Event>, Vec<Skipped>)> {
    let mut events: Vec<Event> = Vec::new();
    let mut skipped = Vec::new();
    for seg in layout.segments()?.iter().rev() {
        if std::fs::symlink_metadata(&seg.path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            // Deleted by rotation since it was listed: everything in it is older still.
            break;
        }
        let text = read_segment(&seg.path).map_err(io::Error::other)?;
        let (mut found, s) = parse(&seg.path, &text);
        skipped.extend(s);
        let begins_before = found.first().is_some_and(|e| time_of(e).is_some_and(|t| t < since));
        found.retain(|e| time_of(e).is_none_or(|t| t >= since));
        found.append(&mut events);
        events = found;
        if begins_before {
            break;
        }
    }
    Ok((events, skipped))
}

/// When an event happened (None: its time does not read).
pub fn time_of(e: &Event) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(&e.time).ok()
}

/// `--since` and `/history?since=`: a duration back from `now` (`24h`, `7d`, `90m`) or a
/// time (RFC 3339, like `2026-11-21T00:00:00Z`).
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = text.trim();
    if let Ok(at) = humantime::parse_rfc3339_weak(t) {
        return Ok(at);
    }
    let back = crate::config::parse_any_duration(t)
        .map_err(|_| format!("{text:?} is neither a duration (24h, 7d, 90m) nor a time (2026-11-21T00:00:00Z)"))?;
    Ok(now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// Whether `e` is about the pool `pool` (with or without the final dot, any case).
pub fn about_pool(e: &Event, pool: &str) -> bool {
    let want = pool.trim_end_matches('.');
    e.pool.as_deref().is_some_and(|p| p.trim_end_matches('.').eq_ignore_ascii_case(want))
}

/// The segments being written: the newest is open for appending.
struct Files {
    layout: Layout,
    /// (number, bytes), oldest first.
    segments: VecDeque<(u64, u64)>,
    current: Option<File>,
    /// The length the current segment must be cut back to before the next write: a write that
    /// failed partway left a partial line there, and cutting it failed too.
    cut_to: Option<u64>,
}

impl Files {
    fn open(layout: &Layout) -> io::Result<Files> {
        std::fs::create_dir_all(&layout.dir)?;
        let found = layout.segments()?;
        let current = match found.last() {
            Some(s) => Some(std::fs::OpenOptions::new().append(true).open(&s.path)?),
            None => None,
        };
        Ok(Files {
            layout: layout.clone(),
            segments: found.iter().map(|s| (s.number, s.len)).collect(),
            current,
            cut_to: None,
        })
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// Ends the current segment and starts the next.
    fn start_segment(&mut self) -> io::Result<()> {
        if let Some(f) = self.current.take() {
            f.sync_all()?;
        }
        let number = self.segments.back().map_or(1, |s| s.0 + 1);
        let file = std::fs::OpenOptions::new().append(true).create_new(true).open(self.layout.path(number))?;
        // The new name must survive a crash along with what is written to it.
        File::open(&self.layout.dir)?.sync_all()?;
        self.segments.push_back((number, 0));
        self.current = Some(file);
        Ok(())
    }

    /// Appends `lines` (each ending in a newline) and syncs them, then deletes the oldest
    /// segments beyond the bound. Returns how many lines are on disk, and the error that
    /// stopped the rest.
    fn append(&mut self, lines: &[Vec<u8>]) -> (usize, Option<io::Error>) {
        if let Some(len) = self.cut_to {
            let cut = self.current.as_ref().map_or(Ok(()), |f| f.set_len(len));
            if let Err(e) = cut {
                return (0, Some(e));
            }
            if let Some(last) = self.segments.back_mut() {
                last.1 = len;
            }
            self.cut_to = None;
        }
        if self.current.is_none()
            && let Err(e) = self.start_segment()
        {
            return (0, Some(e));
        }
        let current = self.segments.back().map_or(0, |s| s.1);
        let sizes: Vec<usize> = lines.iter().map(Vec::len).collect();
        let mut done = 0;
        for (i, n) in split(current, self.layout.segment_size(), &sizes).into_iter().enumerate() {
            if i > 0
                && let Err(e) = self.start_segment()
            {
                return (done, Some(e));
            }
            if n == 0 {
                continue;
            }
            let batch = lines[done..done + n].concat();
            let file = self.current.as_mut().expect("a segment is open");
            let before = self.segments.back().map_or(0, |s| s.1);
            if let Err(e) = file.write_all(&batch).and_then(|()| file.sync_data()) {
                // A partial line must not stay: the next write would glue onto it.
                if file.set_len(before).is_err() {
                    self.cut_to = Some(before);
                }
                return (done, Some(e));
            }
            if let Some(last) = self.segments.back_mut() {
                last.1 += batch.len() as u64;
            }
            done += n;
        }
        let sizes: Vec<u64> = self.segments.iter().map(|s| s.1).collect();
        for _ in 0..to_delete(&sizes, self.layout.keep) {
            let (number, _) = self.segments[0];
            match std::fs::remove_file(self.layout.path(number)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return (done, Some(e)),
            }
            self.segments.pop_front();
        }
        (done, None)
    }
}

/// What the writer keeps between batches: the files, and the lines not yet on disk.
struct Appender {
    layout: Layout,
    files: Option<Files>,
    pending: VecDeque<Vec<u8>>,
}

impl Appender {
    /// Writes what is pending; what could not be written stays pending.
    fn flush(&mut self) -> Result<(), io::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let files = match &mut self.files {
            Some(f) => f,
            None => self.files.insert(Files::open(&self.layout)?),
        };
        let lines: Vec<Vec<u8>> = self.pending.iter().cloned().collect();
        let (done, failed) = files.append(&lines);
        self.pending.drain(..done);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Where the journal's writer stands: writing, or failing and why.
#[derive(Debug, Clone, Default)]
struct Health {
    error: Option<String>,
}

/// The way into the journal's writer task, and what its latest write came to.
pub struct Writer {
    tx: mpsc::UnboundedSender<Event>,
    health: watch::Receiver<Health>,
    dir: String,
}

impl Writer {
    /// Starts the task that appends events to the journal in `layout`. What it has to say of
    /// itself (writing stopped, resumed) it sends to `notes` as events, for the publisher to
    /// number and keep like any other. Once the writer is dropped, the task writes what is
    /// still pending and ends; its handle tells when.
    pub fn start(layout: Layout, notes: mpsc::UnboundedSender<Event>) -> (Writer, tokio::task::JoinHandle<()>) {
        let dir = layout.dir.display().to_string();
        metrics::gauge!("weiche_journal_persisted", "dir" => dir.clone()).set(1.0);
        let (tx, rx) = mpsc::unbounded_channel();
        let (report, health) = watch::channel(Health::default());
        let task = tokio::spawn(write_journal(layout, rx, report, notes));
        (Writer { tx, health, dir }, task)
    }

    /// Hands `e` to the writer; never waits.
    pub fn append(&self, e: &Event) {
        let _ = self.tx.send(e.clone());
    }

    pub fn status(&self) -> JournalStatus {
        let health = self.health.borrow();
        JournalStatus {
            dir: Some(self.dir.clone()),
            persisted: Some(health.error.is_none()),
            error: health.error.clone(),
        }
    }
}

impl crate::ops::events::Sink for Writer {
    fn append(&self, e: &Event) {
        Writer::append(self, e);
    }

    fn status(&self) -> JournalStatus {
        Writer::status(self)
    }
}

/// Queues `e` as a line to write; beyond [`PENDING_MAX`], the oldest waiting goes.
fn take(e: Event, appender: &mut Appender, lost: &mut u64, dir: &str) {
    match serde_json::to_vec(&e) {
        Ok(mut line) => {
            line.push(b'\n');
            appender.pending.push_back(line);
        }
        Err(err) => warn!(seq = e.seq, error = %err, "an event does not serialise; not journaled"),
    }
    if appender.pending.len() > PENDING_MAX {
        appender.pending.pop_front();
        *lost += 1;
        metrics::counter!("weiche_journal_lost_events_total", "dir" => dir.to_string()).increment(1);
    }
}

/// Appends events as they come, every batch that waits together with one fsync, on a blocking
/// thread. While writes fail, tries again every [`RETRY`] and with every new event.
async fn write_journal(
    layout: Layout,
    mut rx: mpsc::UnboundedReceiver<Event>,
    report: watch::Sender<Health>,
    notes: mpsc::UnboundedSender<Event>,
) {
    let dir = layout.dir.display().to_string();
    let mut appender = Some(Appender { layout, files: None, pending: VecDeque::new() });
    // Events dropped since writing stopped.
    let mut lost: u64 = 0;
    loop {
        let failing = report.borrow().error.is_some();
        let next = if failing { tokio::time::timeout(RETRY, rx.recv()).await.ok() } else { Some(rx.recv().await) };
        let mut a = appender.take().expect("the appender is back after each flush");
        let closing = matches!(next, Some(None));
        if let Some(Some(e)) = next {
            take(e, &mut a, &mut lost, &dir);
        }
        while let Ok(e) = rx.try_recv() {
            take(e, &mut a, &mut lost, &dir);
        }
        let (a, result) = match tokio::task::spawn_blocking(move || {
            let r = a.flush();
            (a, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                error!(error = %e, "the event journal's writer failed; events are no longer journaled");
                return;
            }
        };
        if let Some(files) = &a.files {
            metrics::gauge!("weiche_journal_bytes", "dir" => dir.clone()).set(files.bytes() as f64);
        }
        appender = Some(a);
        match result {
            Ok(()) if failing => {
                info!(dir = %dir, lost, "the event journal is written again");
                metrics::gauge!("weiche_journal_persisted", "dir" => dir.clone()).set(1.0);
                let reason = if lost == 0 {
                    "every event of the while was kept".to_string()
                } else {
                    format!("{lost} events of the while were too many to keep and are missing")
                };
                let _ = report.send_replace(Health::default());
                let _ = notes.send(Event::new(EventKind::JournalResumed, reason));
                lost = 0;
            }
            Ok(()) => {}
            Err(e) => {
                let why = format!("cannot write the event journal in {dir}: {e}");
                metrics::counter!("weiche_journal_write_errors_total", "dir" => dir.clone()).increment(1);
                if !failing {
                    error!(dir = %dir, error = %e, "cannot write the event journal; DNS and failover go on, events are kept in memory and written once the disk takes them");
                    metrics::gauge!("weiche_journal_persisted", "dir" => dir.clone()).set(0.0);
                    let _ = notes.send(Event::new(EventKind::JournalFailed, why.clone()));
                }
                let _ = report.send_replace(Health { error: Some(why) });
            }
        }
        if closing {
            let left = appender.as_ref().map_or(0, |a| a.pending.len());
            if left > 0 {
                warn!(dir = %dir, events = left, "stopping with events the journal could not take");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Event {
        Event {
            seq,
            time: format!("2026-11-21T00:{:02}:00.000Z", seq % 60),
            target: Some("192.0.2.1".into()),
            message: "target 192.0.2.1 drained".into(),
            ..Event::new(EventKind::Drain, "operator")
        }
    }

    fn line(seq: u64) -> Vec<u8> {
        let mut l = serde_json::to_vec(&event(seq)).unwrap();
        l.push(b'\n');
        l
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_nothing_before_it_is_lost() {
        let file = Path::new("j/events-00000001.jsonl");
        let mut text = [line(1), line(2), line(3)].concat();
        let whole = text.len();
        text.extend_from_slice(&line(4)[..20]);
        let (events, skipped) = parse(file, &text);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(events[0], event(1), "read back as written");
        assert_eq!(skipped, [Skipped::Torn { file: file.into(), at: whole as u64, len: 20 }]);
        assert!(skipped[0].to_string().contains("torn last line (20 bytes"), "{}", skipped[0]);
        // The whole file, and an empty one, skip nothing.
        assert_eq!(parse(file, &text[..whole]).0.len(), 3);
        assert!(parse(file, &text[..whole]).1.is_empty());
        assert_eq!(parse(file, b""), (vec![], vec![]));
    }

    #[test]
    fn a_bad_line_in_the_middle_costs_only_itself() {
        let file = Path::new("j/events-00000002.jsonl");
        // A partial write that was appended after (a disk that filled and freed), a blank
        // line, and JSON that is no event.
        let text =
            [line(1), line(2)[..30].to_vec(), line(3), b"\n".to_vec(), b"{\"seq\":9}\n".to_vec(), line(4)].concat();
        let (events, skipped) = parse(file, &text);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(matches!(&skipped[0], Skipped::Bad { line: 2, .. }), "{skipped:?}");
        assert!(matches!(&skipped[1], Skipped::Bad { line: 4, .. }), "the torn line swallowed line 3: {skipped:?}");
        assert!(skipped[0].to_string().starts_with("j/events-00000002.jsonl:2: skipped a line"), "{}", skipped[0]);
    }

    #[test]
    fn lines_are_split_over_segments_of_the_size() {
        // Room in the current segment first, then new ones.
        assert_eq!(split(0, 100, &[40, 40, 40]), [2, 1]);
        assert_eq!(split(70, 100, &[30, 1]), [1, 1]);
        assert_eq!(split(71, 100, &[30, 30]), [0, 2]);
        // A line alone may exceed a segment: it gets one of its own, never none.
        assert_eq!(split(0, 100, &[250]), [1]);
        assert_eq!(split(10, 100, &[250, 10]), [0, 1, 1]);
        assert_eq!(split(10, 100, &[]), [0]);
        // Every line is placed once.
        let lines = [33usize; 50];
        let groups = split(17, 100, &lines);
        assert_eq!(groups.iter().sum::<usize>(), 50);
        assert!(groups[1..].iter().all(|&n| n * 33 <= 100));
    }

    #[test]
    fn the_oldest_segments_go_until_the_rest_fits() {
        assert_eq!(to_delete(&[100, 100, 100], 300), 0);
        assert_eq!(to_delete(&[100, 100, 101], 300), 1);
        assert_eq!(to_delete(&[100, 100, 100, 100, 5], 300), 2);
        // The newest stays even when it alone is beyond the bound.
        assert_eq!(to_delete(&[10, 500], 300), 1);
        assert_eq!(to_delete(&[500], 300), 0);
        assert_eq!(to_delete(&[], 300), 0);
    }

    /// Appending many batches keeps the bound, keeps the newest events whole, and numbers
    /// segments in order.
    #[test]
    fn appending_keeps_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { dir: dir.path().join(DIR), keep: 8 * 1024 };
        let mut files = Files::open(&layout).unwrap();
        let mut seq = 0;
        for batch in 0..200 {
            let lines: Vec<Vec<u8>> = (0..(batch % 7 + 1))
                .map(|_| {
                    seq += 1;
                    line(seq)
                })
                .collect();
            assert!(files.append(&lines).1.is_none());
            let on_disk: u64 = layout.segments().unwrap().iter().map(|s| s.len).sum();
            assert!(on_disk <= layout.keep, "{on_disk} bytes on disk after batch {batch}");
            assert_eq!(on_disk, files.bytes());
        }
        let segments = layout.segments().unwrap();
        assert!(segments.len() >= 7 && segments.len() <= 9, "{segments:?}");
        assert!(segments.windows(2).all(|w| w[0].number + 1 == w[1].number));
        let (events, skipped) = read_since(&layout, SystemTime::UNIX_EPOCH).unwrap();
        assert!(skipped.is_empty());
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(*seqs.last().unwrap(), seq, "the newest is kept");
        assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "no gap in what is kept");
        assert!(seqs[0] > 1, "the oldest went");
        let kept: u64 = segments.iter().map(|s| s.len).sum();
        assert!(kept >= layout.keep - 2 * layout.segment_size(), "at least 3/4 of the bound is history: {kept}");
        // A start reads the newest back and cuts a torn tail off.
        let last = &segments.last().unwrap().path;
        std::fs::OpenOptions::new().append(true).open(last).unwrap().write_all(&line(seq + 1)[..25]).unwrap();
        let restored = restore(&layout);
        assert_eq!(restored.events.last().unwrap().seq, seq);
        assert!(matches!(restored.skipped.as_slice(), [Skipped::Torn { len: 25, .. }]), "{:?}", restored.skipped);
        assert!(std::fs::read(last).unwrap().ends_with(b"\n"), "cut back to the last whole line");
        assert!(restore(&layout).skipped.is_empty(), "and the next start finds nothing to skip");
    }

    #[test]
    fn since_reads_durations_and_times() {
        let now = humantime::parse_rfc3339("2026-11-21T12:00:00Z").unwrap();
        assert_eq!(parse_since("24h", now), Ok(humantime::parse_rfc3339("2026-11-20T12:00:00Z").unwrap()));
        assert_eq!(parse_since("90m", now), Ok(humantime::parse_rfc3339("2026-11-21T10:30:00Z").unwrap()));
        assert_eq!(
            parse_since("2026-11-21T00:00:00Z", now),
            Ok(humantime::parse_rfc3339("2026-11-21T00:00:00Z").unwrap())
        );
        assert!(parse_since("yesterday", now).unwrap_err().contains("neither a duration"));
        assert!(about_pool(&Event { pool: Some("www.example.com.".into()), ..event(1) }, "WWW.example.com"));
        assert!(!about_pool(&event(1), "www.example.com."));
    }
}
