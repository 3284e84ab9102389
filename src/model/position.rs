//! Where something was written, and the errors that say so: `file:line:col: message`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Where something was written: file, line, column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A problem in a file, shown as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {msg}")]
pub struct FileError {
    pub at: Location,
    pub msg: String,
}

impl FileError {
    pub fn new(file: &Arc<Path>, line: u32, col: u32, msg: impl Into<String>) -> Self {
        FileError { at: Location { file: file.clone(), line, col }, msg: msg.into() }
    }
}

/// 1-based line and column of a byte offset.
pub fn locate(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

/// Turns a span in `text` (the contents of `file`) into a positioned error.
pub fn span_error(file: &Arc<Path>, text: &str, span: std::ops::Range<usize>, msg: impl Into<String>) -> FileError {
    let (line, col) = locate(text, span.start);
    FileError::new(file, line, col, msg)
}

pub fn toml_error(file: &Arc<Path>, text: &str, e: &toml::de::Error) -> FileError {
    let span = e.span().unwrap_or(0..0);
    span_error(file, text, span, e.message().trim_end().replace('\n', " "))
}
