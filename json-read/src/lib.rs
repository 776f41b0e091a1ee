//! A strict JSON reader (RFC 8259) that pulls one value at a time, from bytes or from a stream,
//! without building a tree. The caller walks the document: [`Reader::begin_object`] and
//! [`Reader::next_key`], [`Reader::begin_array`] and [`Reader::next_element`], a scalar read for
//! each value it wants and [`Reader::skip`] for those it does not, then [`Reader::end`].
//!
//! It accepts exactly what serde_json accepts (the tests and the `json_read` fuzz target compare
//! the two on any bytes), with the same limits: strings must be UTF-8 without lone surrogates,
//! numbers must fit an `f64`, values read nest at most 127 deep (serde_json refuses the 128th). Skipped strings are checked as
//! serde_json checks ignored ones (escapes and control characters, not their UTF-8). Errors have
//! serde_json's messages and a line and column, and never quote the input: a body or a
//! configuration may hold secrets.
//!
//! Why not serde_json: its generic reader is instantiated for every type it reads, and was about a
//! fifth of the filter's `.wasm` (issue #9).

mod error;
mod number;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;

pub use error::{Category, Error};
pub use number::Number;

use std::borrow::Cow;
use std::io::Read;

/// serde_json's nesting limit (for values read; skipped ones have none, as in serde_json).
const MAX_DEPTH: u32 = 127;
/// How much a stream is read at a time.
const CHUNK: usize = 8 * 1024;

/// Where a string's bytes are: `buf[start..end]`, or the scratch space.
#[derive(Clone, Copy)]
enum Span {
    Input(usize, usize),
    Scratch,
}

/// How many bytes of `bytes` a string holds as they are (up to a quote, a backslash or a
/// control character).
fn plain_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
        .unwrap_or(bytes.len())
}

/// What the next value is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// As serde names it in "invalid type" messages (without the value).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "sequence",
            Kind::Object => "map",
        }
    }
}

/// Reads one JSON document. See the crate's documentation.
pub struct Reader<'a> {
    /// The bytes being read: all of them, or the current window of a stream.
    buf: Cow<'a, [u8]>,
    pos: usize,
    /// Where more bytes come from (a stream), or `None`.
    source: Option<&'a mut dyn Read>,
    /// Bytes of the stream before `buf`.
    offset: usize,
    line: usize,
    /// The offset in the document where the current line starts.
    line_start: usize,
    /// A string being read that is not a slice of `buf` (escapes, or split between windows).
    scratch: Vec<u8>,
    depth: u32,
    /// No element has been read yet in the innermost open array or object.
    first: bool,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, which hold the whole document.
    pub fn from_slice(bytes: &'a [u8]) -> Self {
        Self::new(Cow::Borrowed(bytes), None)
    }

    /// Reads a document from `source` as it goes, a window at a time (a large document is never
    /// held whole).
    pub fn from_read(source: &'a mut dyn Read) -> Self {
        Self::new(Cow::Owned(Vec::new()), Some(source))
    }

    fn new(buf: Cow<'a, [u8]>, source: Option<&'a mut dyn Read>) -> Self {
        Reader {
            buf,
            pos: 0,
            source,
            offset: 0,
            line: 1,
            line_start: 0,
            scratch: Vec::new(),
            depth: 0,
            first: false,
        }
    }

    /// An error of the document's shape (a missing field, a wrong type) at the current position.
    pub fn error(&self, message: impl Into<String>) -> Error {
        self.at(error::Kind::Data(message.into()))
    }

    /// "invalid type: string, expected u64": the next value (not consumed) is not what the
    /// caller can take.
    pub fn invalid_type(&mut self, expected: &str) -> Error {
        match self.peek_kind() {
            Ok(kind) => {
                let found = match kind {
                    Kind::Number => self.number_kind(),
                    _ => kind.name(),
                };
                self.error(format!("invalid type: {found}, expected {expected}"))
            }
            Err(e) => e,
        }
    }

    /// "integer" or "floating point", as serde names the next number (consumed).
    fn number_kind(&mut self) -> &'static str {
        match self.number() {
            Ok(n) if n.is_integer() => "integer",
            _ => "floating point",
        }
    }

    fn at(&self, kind: error::Kind) -> Error {
        let position = self.offset.saturating_add(self.pos);
        Error::new(kind, self.line, position.saturating_sub(self.line_start))
    }

    fn syntax(&self, message: &'static str) -> Error {
        self.at(error::Kind::Syntax(message))
    }

    fn eof(&self, message: &'static str) -> Error {
        self.at(error::Kind::Eof(message))
    }

    /// The byte at `pos`, reading more of a stream if needed; `None` at the end.
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, Error> {
        match self.buf.get(self.pos) {
            Some(b) => Ok(Some(*b)),
            None => self.refill(),
        }
    }

    #[cold]
    fn refill(&mut self) -> Result<Option<u8>, Error> {
        let Some(source) = self.source.as_mut() else {
            return Ok(None);
        };
        let buf = self.buf.to_mut();
        self.offset = self.offset.saturating_add(buf.len());
        buf.clear();
        buf.resize(CHUNK, 0);
        let n = loop {
            match source.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    buf.clear();
                    self.pos = 0;
                    return Err(self.at(error::Kind::Io));
                }
            }
        };
        buf.truncate(n);
        self.pos = 0;
        Ok(buf.first().copied())
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Result<Option<u8>, Error> {
        match self.buf.get(self.pos) {
            Some(b) if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') => Ok(Some(*b)),
            _ => self.skip_whitespace(),
        }
    }

    fn skip_whitespace(&mut self) -> Result<Option<u8>, Error> {
        loop {
            let buf: &[u8] = &self.buf;
            let mut pos = self.pos;
            while let Some(b) = buf.get(pos) {
                match b {
                    b' ' | b'\t' | b'\r' => pos += 1,
                    b'\n' => {
                        pos += 1;
                        self.line = self.line.saturating_add(1);
                        self.line_start = self.offset.saturating_add(pos);
                    }
                    _ => {
                        self.pos = pos;
                        return Ok(Some(*b));
                    }
                }
            }
            self.pos = pos;
            if self.refill()?.is_none() {
                return Ok(None);
            }
        }
    }

    /// What the next value is (not consumed).
    pub fn peek_kind(&mut self) -> Result<Kind, Error> {
        match self.peek()? {
            None => Err(self.eof("EOF while parsing a value")),
            Some(b'n') => Ok(Kind::Null),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b'"') => Ok(Kind::String),
            Some(b'[') => Ok(Kind::Array),
            Some(b'{') => Ok(Kind::Object),
            Some(_) => Err(self.syntax("expected value")),
        }
    }

    /// Consumes `word` (a literal's remaining letters).
    fn literal(&mut self, word: &[u8]) -> Result<(), Error> {
        for want in word {
            match self.byte()? {
                Some(b) if b == *want => self.pos += 1,
                Some(_) => return Err(self.syntax("expected ident")),
                None => return Err(self.eof("EOF while parsing a value")),
            }
        }
        Ok(())
    }

    /// `null` if it is next (consumed): `Ok(true)`; any other value is left.
    pub fn null(&mut self) -> Result<bool, Error> {
        if self.peek_kind()? != Kind::Null {
            return Ok(false);
        }
        self.pos += 1;
        self.literal(b"ull")?;
        Ok(true)
    }

    /// A boolean, or an "invalid type" error.
    pub fn bool(&mut self) -> Result<bool, Error> {
        match self.peek()? {
            Some(b't') => {
                self.pos += 1;
                self.literal(b"rue")?;
                Ok(true)
            }
            Some(b'f') => {
                self.pos += 1;
                self.literal(b"alse")?;
                Ok(false)
            }
            _ => Err(self.invalid_type("a boolean")),
        }
    }

    /// A number, or an "invalid type" error.
    pub fn number(&mut self) -> Result<Number, Error> {
        if self.peek_kind()? != Kind::Number {
            return Err(self.invalid_type("a number"));
        }
        number::read(self)
    }

    /// An unsigned integer (`expected` names the type for errors, e.g. "u64"), or an
    /// "invalid type" / "invalid value" error.
    pub fn unsigned(&mut self, max: u64, expected: &str) -> Result<u64, Error> {
        if self.peek_kind()? != Kind::Number {
            return Err(self.invalid_type(expected));
        }
        let n = number::read(self)?;
        match n.as_u64() {
            Some(v) if v <= max => Ok(v),
            _ if n.is_integer() => {
                Err(self.error(format!("invalid value: integer, expected {expected}")))
            }
            _ => Err(self.error(format!("invalid type: floating point, expected {expected}"))),
        }
    }

    /// A signed integer, or an "invalid type" / "invalid value" error.
    pub fn signed(&mut self) -> Result<i64, Error> {
        if self.peek_kind()? != Kind::Number {
            return Err(self.invalid_type("i64"));
        }
        let n = number::read(self)?;
        match n.as_i64() {
            Some(v) => Ok(v),
            None if n.is_integer() => Err(self.error("invalid value: integer, expected i64")),
            None => Err(self.error("invalid type: floating point, expected i64")),
        }
    }

    /// A number as `f64`, or an "invalid type" error.
    pub fn f64(&mut self) -> Result<f64, Error> {
        if self.peek_kind()? != Kind::Number {
            return Err(self.invalid_type("f64"));
        }
        Ok(number::read(self)?.as_f64())
    }

    /// A string, or an "invalid type" error. Borrowed from the input or from the reader's
    /// scratch space: valid until the next call.
    pub fn str(&mut self) -> Result<&str, Error> {
        if self.peek()? != Some(b'"') {
            return Err(self.invalid_type("a string"));
        }
        self.pos += 1;
        let span = self.string_span()?;
        self.text(span)
    }

    /// [`Reader::str`], owned.
    pub fn string(&mut self) -> Result<String, Error> {
        self.str().map(str::to_owned)
    }

    /// The text of a string read by [`Reader::string_span`], checked as UTF-8.
    fn text(&self, span: Span) -> Result<&str, Error> {
        let bytes = match span {
            Span::Input(start, end) => self.buf.get(start..end),
            Span::Scratch => Some(&self.scratch[..]),
        };
        std::str::from_utf8(bytes.unwrap_or_default())
            .map_err(|_| self.syntax("invalid unicode code point"))
    }

    /// Reads the rest of a string after its opening quote; where its bytes are.
    fn string_span(&mut self) -> Result<Span, Error> {
        // The common case: no escape, all in the window.
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let len = plain_run(rest);
        if rest.get(len) == Some(&b'"') {
            self.pos = start + len + 1;
            return Ok(Span::Input(start, start + len));
        }
        self.scratch.clear();
        self.string_rest(true)?;
        Ok(Span::Scratch)
    }

    /// Reads the rest of a string through its closing quote, decoded into `scratch` when
    /// `keep`, else only checked (escapes and control characters).
    fn string_rest(&mut self, keep: bool) -> Result<(), Error> {
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let run = plain_run(rest);
            if keep {
                self.scratch
                    .extend_from_slice(rest.get(..run).unwrap_or_default());
            }
            self.pos += run;
            match self.byte()? {
                None => return Err(self.eof("EOF while parsing a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(keep)?;
                }
                Some(0..=0x1f) => {
                    return Err(self.syntax(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ))
                }
                // The window was refilled: more of the string.
                Some(_) => {}
            }
        }
    }

    /// An escape after its backslash: decoded into `scratch` when `keep`, else only checked.
    fn escape(&mut self, keep: bool) -> Result<(), Error> {
        let Some(b) = self.byte()? else {
            return Err(self.eof("EOF while parsing a string"));
        };
        self.pos += 1;
        let plain = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                if !keep {
                    return Ok(());
                }
                let c = match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate: its trailing one must follow as `\uXXXX`.
                        if self.byte()? != Some(b'\\') {
                            return Err(self.syntax("unexpected end of hex escape"));
                        }
                        self.pos += 1;
                        if self.byte()? != Some(b'u') {
                            return Err(self.syntax("unexpected end of hex escape"));
                        }
                        self.pos += 1;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.syntax("lone leading surrogate in hex escape"));
                        }
                        let code = 0x10000
                            + ((u32::from(unit) - 0xD800) << 10)
                            + (u32::from(low) - 0xDC00);
                        char::from_u32(code)
                    }
                    0xDC00..=0xDFFF => None,
                    _ => char::from_u32(u32::from(unit)),
                };
                let Some(c) = c else {
                    return Err(self.syntax("lone leading surrogate in hex escape"));
                };
                let mut utf8 = [0; 4];
                self.scratch
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => return Err(self.syntax("invalid escape")),
        };
        if keep {
            self.scratch.push(plain);
        }
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u16, Error> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let Some(b) = self.byte()? else {
                return Err(self.eof("EOF while parsing a string"));
            };
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(self.syntax("invalid escape")),
            };
            self.pos += 1;
            v = (v << 4) | u16::from(d);
        }
        Ok(v)
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.syntax("recursion limit exceeded"));
        }
        self.depth += 1;
        self.first = true;
        Ok(())
    }

    fn leave(&mut self) {
        self.pos += 1;
        self.depth = self.depth.saturating_sub(1);
        // The enclosing array or object now has an element: this one.
        self.first = false;
    }

    /// Consumes `{`, or gives an "invalid type" error naming `expected`.
    pub fn begin_object(&mut self, expected: &str) -> Result<(), Error> {
        if self.peek()? != Some(b'{') {
            return Err(self.invalid_type(expected));
        }
        self.pos += 1;
        self.enter()
    }

    /// The next key of the object being read (its value is next), or `None` after its `}`.
    pub fn next_key(&mut self) -> Result<Option<&str>, Error> {
        match self.peek()? {
            None => return Err(self.eof("EOF while parsing an object")),
            Some(b'}') => {
                self.leave();
                return Ok(None);
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                match self.peek()? {
                    None => return Err(self.eof("EOF while parsing a value")),
                    Some(b'}') => return Err(self.syntax("trailing comma")),
                    Some(_) => {}
                }
            }
            Some(_) if !self.first => return Err(self.syntax("expected `,` or `}`")),
            Some(_) => {}
        }
        self.first = false;
        match self.peek()? {
            Some(b'"') => {}
            None => return Err(self.eof("EOF while parsing a value")),
            Some(_) => return Err(self.syntax("key must be a string")),
        }
        self.pos += 1;
        let mut span = self.string_span()?;
        if let (Span::Input(start, end), Some(_)) = (span, &self.source) {
            // The window may move while the colon is looked for.
            let Reader { buf, scratch, .. } = self;
            scratch.clear();
            scratch.extend_from_slice(buf.get(start..end).unwrap_or_default());
            span = Span::Scratch;
        }
        match self.peek()? {
            Some(b':') => self.pos += 1,
            None => return Err(self.eof("EOF while parsing an object")),
            Some(_) => return Err(self.syntax("expected `:`")),
        }
        self.text(span).map(Some)
    }

    /// Consumes `[`, or gives an "invalid type" error naming `expected`.
    pub fn begin_array(&mut self, expected: &str) -> Result<(), Error> {
        if self.peek()? != Some(b'[') {
            return Err(self.invalid_type(expected));
        }
        self.pos += 1;
        self.enter()
    }

    /// `true` if the array being read has another element (read it next), `false` after its `]`.
    pub fn next_element(&mut self) -> Result<bool, Error> {
        match self.peek()? {
            None => Err(self.eof("EOF while parsing a list")),
            Some(b']') => {
                self.leave();
                Ok(false)
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                match self.peek()? {
                    None => Err(self.eof("EOF while parsing a value")),
                    Some(b']') => Err(self.syntax("trailing comma")),
                    Some(_) => Ok(true),
                }
            }
            Some(_) if !self.first => Err(self.syntax("expected `,` or `]`")),
            Some(_) => {
                self.first = false;
                Ok(true)
            }
        }
    }

    /// Checks and skips the next value, whatever it is, as serde_json ignores a value: its
    /// syntax is checked, not its strings' UTF-8 or its numbers' range, and its nesting is not
    /// limited (a stack of one byte per level, which the input's length bounds).
    pub fn skip(&mut self) -> Result<(), Error> {
        // Per open container: is it an object?
        let mut open: Vec<bool> = Vec::new();
        loop {
            match self.peek()? {
                None => return Err(self.eof("EOF while parsing a value")),
                Some(b'n') => {
                    self.pos += 1;
                    self.literal(b"ull")?;
                }
                Some(b't') => {
                    self.pos += 1;
                    self.literal(b"rue")?;
                }
                Some(b'f') => {
                    self.pos += 1;
                    self.literal(b"alse")?;
                }
                Some(b'-' | b'0'..=b'9') => number::skip(self)?,
                Some(b'"') => {
                    self.pos += 1;
                    self.string_rest(false)?;
                }
                Some(b @ (b'[' | b'{')) => {
                    self.pos += 1;
                    let object = b == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == Some(close) {
                        self.pos += 1;
                    } else {
                        open.push(object);
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                Some(_) => return Err(self.syntax("expected value")),
            }
            // A value ended: close the containers it ended, up to one with another element.
            loop {
                let Some(&object) = open.last() else {
                    return Ok(());
                };
                match (self.peek()?, object) {
                    (Some(b','), _) => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.pos += 1;
                        open.pop();
                    }
                    (Some(_), true) => return Err(self.syntax("expected `,` or `}`")),
                    (Some(_), false) => return Err(self.syntax("expected `,` or `]`")),
                    (None, true) => return Err(self.eof("EOF while parsing an object")),
                    (None, false) => return Err(self.eof("EOF while parsing a list")),
                }
            }
        }
    }

    /// While skipping an object: its next key and colon.
    fn skip_key(&mut self) -> Result<(), Error> {
        match self.peek()? {
            Some(b'"') => self.pos += 1,
            Some(_) => return Err(self.syntax("key must be a string")),
            None => return Err(self.eof("EOF while parsing an object")),
        }
        self.string_rest(false)?;
        match self.peek()? {
            Some(b':') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.syntax("expected `:`")),
            None => Err(self.eof("EOF while parsing an object")),
        }
    }

    /// Checks that nothing but whitespace follows the document.
    pub fn end(&mut self) -> Result<(), Error> {
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters")),
        }
    }
}

#[cfg(test)]
mod tests;
