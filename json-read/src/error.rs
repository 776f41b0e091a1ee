//! The reader's error: serde_json's message and category, a line and a column, never the input.

use std::fmt;

/// What kind of error, as serde_json classifies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The stream could not be read.
    Io,
    /// Not JSON.
    Syntax,
    /// JSON, but not of the shape the caller reads (a wrong type, a missing field).
    Data,
    /// The input ended inside a value.
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Io,
    Syntax(&'static str),
    Eof(&'static str),
    Data(String),
}

/// Why a document could not be read, and where (1-based line; column: bytes of the line read).
/// Boxed: one pointer, so that every `Result` of the reader's calls stays in registers (a reader
/// returning a 40-byte error by value was half again as slow on small documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: Kind,
    line: usize,
    column: usize,
}

impl Error {
    #[cold]
    pub(crate) fn new(kind: Kind, line: usize, column: usize) -> Self {
        Error(Box::new(Inner { kind, line, column }))
    }

    pub fn category(&self) -> Category {
        match self.0.kind {
            Kind::Io => Category::Io,
            Kind::Syntax(_) => Category::Syntax,
            Kind::Eof(_) => Category::Eof,
            Kind::Data(_) => Category::Data,
        }
    }

    pub fn line(&self) -> usize {
        self.0.line
    }

    pub fn column(&self) -> usize {
        self.0.column
    }

    /// The message without its position.
    pub fn message(&self) -> &str {
        match &self.0.kind {
            Kind::Io => "the input could not be read",
            Kind::Syntax(m) | Kind::Eof(m) => m,
            Kind::Data(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message(),
            self.0.line,
            self.0.column
        )
    }
}

impl std::error::Error for Error {}
