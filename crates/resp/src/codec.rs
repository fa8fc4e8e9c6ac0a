//! RESP2, the Redis serialization protocol, as the server and the client see it.
//!
//! A RESP2 value is one of five kinds, told apart by its first byte:
//! `+` simple string, `-` error, `:` integer, `$` bulk string (`$-1` is the
//! null bulk), `*` array (`*-1` is the null array). Every header line ends in
//! `\r\n`; a bulk's payload is exactly its declared length, followed by
//! `\r\n`, so bulks are binary-safe (a key may hold `\0` or `\r\n`).
//!
//! A client command is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! or, for people typing into `telnet` or `redis-cli` pipes, an *inline*
//! command: one line of space-separated words with the quoting rules of Redis'
//! `sdssplitargs` (`"..."` with `\n \r \t \b \a \\ \" \xHH` escapes, `'...'`
//! with only `\'`). Both are accepted by [`parse_command`].
//!
//! # Errors and limits
//! Malformed or oversized input is a [`ProtocolError`] whose message is the one
//! Redis sends (`Protocol error: invalid bulk length`, ...). A server replies
//! with `-ERR <message>` and closes the connection, as Redis does, because
//! after a framing error it can no longer tell where the next command starts.
//! [`Limits`] bounds what one command may make the server buffer: a bulk of
//! at most 64 MiB (Redis' `proto-max-bulk-len` defaults to 512 MiB; a
//! consensus log entry of that size would stall replication for seconds, so we
//! choose 64 MiB), at most 1,048,576 arguments, and an inline line (or an
//! unterminated header line) of at most 64 KiB. No input makes a parser panic,
//! allocate more than a small multiple of the bytes it was given, or recurse
//! deeper than [`Limits::max_depth`].
//!
//! # Cost of partial input
//! A server calls the parser after every read, so a 64 MiB `SET` arriving in
//! 4 KiB reads is parsed ~16,000 times before it is complete. Both parsers
//! first *scan* the input without copying anything: a header line is found
//! with a bounded search, and a bulk's payload is skipped by comparing its
//! declared length with the bytes available. Only a complete value is copied
//! out. One call therefore costs O(header bytes + number of elements present),
//! never O(payload bytes), until the value is complete; then one O(bytes) copy.
//! A command of very many small arguments arriving in very many reads would
//! still be rescanned from its start on each call; [`CommandDecoder`] remembers
//! how far it got, which makes the total cost linear in the input whatever the
//! read pattern. [`parse_command`] is a fresh decoder used once.
//!
//! # Fuzzing
//! `crates/resp/fuzz` holds a cargo-fuzz target, `resp_parse`, outside the
//! workspace. It feeds arbitrary bytes to both parsers and checks that a value
//! re-encodes to something that parses back to itself, and that feeding a
//! command in two pieces through [`CommandDecoder`] equals parsing it at once:
//!
//! ```text
//! cargo install cargo-fuzz
//! cd crates/resp/fuzz && nice -n 10 cargo +nightly fuzz run resp_parse -- -max_total_time=300
//! # on a stable-only toolchain: RUSTC_BOOTSTRAP=1 cargo fuzz run resp_parse -- -max_total_time=300
//! ```

use std::fmt;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK\r\n`. Never contains `\r` or `\n`; [`encode`] replaces them by spaces.
    Simple(String),
    /// `-ERR message\r\n`. Same restriction as [`Value::Simple`].
    Error(String),
    /// `:42\r\n`.
    Integer(i64),
    /// `$3\r\nfoo\r\n`; `None` is the null bulk `$-1\r\n` (a missing key).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`; `None` is the null array `*-1\r\n`.
    Array(Option<Vec<Value>>),
}

impl Value {
    /// A bulk string holding `bytes`.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Bulk(Some(bytes.into()))
    }

    /// The error message if this is an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Value::Error(message) => Some(message),
            _ => None,
        }
    }
}

/// What one value or command may make a parser accept. See the module doc for
/// why the defaults are what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk payload, in bytes. Default 64 MiB.
    pub max_bulk: usize,
    /// Most elements in one array (arguments in one command). Default 1,048,576.
    pub max_args: usize,
    /// Longest inline command line, and longest header or simple-string line
    /// still lacking its `\r\n`. Default 64 KiB.
    pub max_inline: usize,
    /// Most bytes of argument payload in one command, summed over its
    /// arguments; checked as each argument's length is declared, before its
    /// bytes arrive. Default 128 MiB.
    pub max_command: usize,
    /// Deepest nesting of arrays in a reply: [`parse_value`] recurses once per
    /// level and dropping a [`Value`] does too, so depth must be bounded to keep
    /// hostile input from overflowing the stack. Default 128.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 64 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: 64 * 1024,
            max_command: 128 * 1024 * 1024,
            max_depth: 128,
        }
    }
}

/// A byte shown the way a person can read it in an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownByte(pub u8);

impl fmt::Display for ShownByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() || self.0 == b' ' {
            write!(f, "{}", self.0 as char)
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}

/// Input that is not RESP2, or exceeds [`Limits`]. The messages are Redis'
/// own, so a client sees the same text from us as from Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` where n is not an integer or exceeds [`Limits::max_args`].
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<n>` where n is not an integer, is negative in a command, or exceeds [`Limits::max_bulk`].
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a command array that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(ShownByte),
    /// An inline line longer than [`Limits::max_inline`].
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// An inline command whose quotes do not close (or a closing quote not followed by a space).
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` header line longer than [`Limits::max_inline`] without its `\r\n`.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkCountTooBig,
    /// A `$` header line longer than [`Limits::max_inline`] without its `\r\n`.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// A bulk payload not followed by `\r\n`.
    #[error("Protocol error: expected CRLF after bulk data")]
    MissingBulkTerminator,
    /// A reply starting with a byte that names no RESP2 type.
    #[error("Protocol error: invalid reply type byte '{0}'")]
    InvalidType(ShownByte),
    /// A `:` reply that is not a 64-bit integer.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A simple string, error or integer line longer than [`Limits::max_inline`],
    /// or a line ended by a bare `\n`.
    #[error("Protocol error: invalid or too long line")]
    InvalidLine,
    /// A command whose arguments together exceed [`Limits::max_command`].
    #[error("Protocol error: command larger than {0} bytes")]
    CommandTooBig(usize),
    /// Arrays nested deeper than [`Limits::max_depth`].
    #[error("Protocol error: arrays nested deeper than {0}")]
    TooDeep(usize),
}

/// What the parsers return: `Ok(None)` to ask for more bytes, or the value
/// and how many bytes of the input it used.
pub type Parsed<T> = Result<Option<(T, usize)>, ProtocolError>;

/// Parse one client command from the front of `buf`.
///
/// `Ok(None)`: the command is not complete yet; call again with more bytes
/// appended. `Ok(Some((args, consumed)))`: the command's arguments and how many
/// bytes of `buf` it took. An empty command (an empty inline line, `*0`,
/// `*-1`) yields empty `args`; Redis ignores those, and so should the caller.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Parsed<Vec<Vec<u8>>> {
    CommandDecoder::new().decode(buf, limits)
}

/// A [`parse_command`] that remembers its progress across calls, so that a
/// command arriving in many reads costs time linear in its size.
///
/// Contract: between calls the caller only *appends* to the buffer it passes;
/// after `Some((_, consumed))` it drops `consumed` bytes from the front (the
/// decoder then starts afresh), and after an error it discards the connection.
/// If the buffer is replaced otherwise, call [`CommandDecoder::reset`]. A
/// buffer shorter than what the decoder already scanned is detected and
/// rescanned from the start rather than misread.
#[derive(Debug, Default, Clone)]
pub struct CommandDecoder {
    progress: Progress,
}

#[derive(Debug, Default, Clone)]
enum Progress {
    /// Nothing known about the buffer yet.
    #[default]
    Start,
    /// An inline line: `[0, scanned)` holds no `\n`.
    Inline { scanned: usize },
    /// A multibulk of `count` arguments: the payloads found so far occupy
    /// `spans` (each `[start, end)`), and the next argument's header starts at `next`.
    Multibulk { count: usize, spans: Vec<(usize, usize)>, next: usize },
}

impl CommandDecoder {
    /// A decoder at the start of a command.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any progress: the next call scans its buffer from the start.
    pub fn reset(&mut self) {
        self.progress = Progress::Start;
    }

    /// Parse one command from the front of `buf`; the contract of
    /// [`parse_command`], plus the one on [`CommandDecoder`].
    pub fn decode(&mut self, buf: &[u8], limits: &Limits) -> Parsed<Vec<Vec<u8>>> {
        if self.scanned_past(buf.len()) {
            self.reset();
        }
        let result = match std::mem::take(&mut self.progress) {
            Progress::Start => match buf.first() {
                None => Ok(None),
                Some(b'*') => self.decode_multibulk_header(buf, limits),
                Some(_) => self.decode_inline(buf, 0, limits),
            },
            Progress::Inline { scanned } => self.decode_inline(buf, scanned, limits),
            Progress::Multibulk { count, spans, next } => {
                self.decode_arguments(buf, count, spans, next, limits)
            }
        };
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn scanned_past(&self, len: usize) -> bool {
        match &self.progress {
            Progress::Start => false,
            Progress::Inline { scanned } => *scanned > len,
            Progress::Multibulk { next, .. } => *next > len,
        }
    }

    fn decode_inline(&mut self, buf: &[u8], scanned: usize, limits: &Limits) -> Parsed<Vec<Vec<u8>>> {
        let Some(offset) = find_byte(b'\n', &buf[scanned..]) else {
            // The line so far may end in the `\r` of its `\r\n`, hence the + 1.
            if buf.len() > limits.max_inline.saturating_add(1) {
                return Err(ProtocolError::InlineTooBig);
            }
            self.progress = Progress::Inline { scanned: buf.len() };
            return Ok(None);
        };
        let newline = scanned + offset;
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > limits.max_inline {
            return Err(ProtocolError::InlineTooBig);
        }
        let args = split_args(line)?;
        if args.len() > limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        Ok(Some((args, newline + 1)))
    }

    fn decode_multibulk_header(&mut self, buf: &[u8], limits: &Limits) -> Parsed<Vec<Vec<u8>>> {
        let Some((line, next)) = header_line(buf, 1, limits.max_inline, ProtocolError::MultibulkCountTooBig)?
        else {
            return Ok(None);
        };
        let count = parse_i64(line).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count <= 0 {
            return Ok(Some((Vec::new(), next)));
        }
        let count = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
        if count > limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        self.decode_arguments(buf, count, Vec::new(), next, limits)
    }

    fn decode_arguments(
        &mut self,
        buf: &[u8],
        count: usize,
        mut spans: Vec<(usize, usize)>,
        mut next: usize,
        limits: &Limits,
    ) -> Parsed<Vec<Vec<u8>>> {
        let mut total: usize = spans.iter().map(|(start, end)| end - start).sum();
        while spans.len() < count {
            match bulk_span(buf, next, limits, total)? {
                Some((span, after)) => {
                    total += span.1 - span.0;
                    spans.push(span);
                    next = after;
                }
                None => {
                    self.progress = Progress::Multibulk { count, spans, next };
                    return Ok(None);
                }
            }
        }
        // Invariant: every span was checked against buf.len() by bulk_span.
        let args = spans.iter().map(|&(start, end)| buf[start..end].to_vec()).collect();
        Ok(Some((args, next)))
    }
}

/// The payload span of the command argument `$<n>\r\n<payload>\r\n` starting
/// at `at`, and where the next one starts. `before`: payload bytes of the
/// command's earlier arguments.
fn bulk_span(buf: &[u8], at: usize, limits: &Limits, before: usize) -> Parsed<(usize, usize)> {
    let Some(&first) = buf.get(at) else { return Ok(None) };
    if first != b'$' {
        return Err(ProtocolError::ExpectedBulk(ShownByte(first)));
    }
    let Some((line, start)) = header_line(buf, at + 1, limits.max_inline, ProtocolError::BulkCountTooBig)?
    else {
        return Ok(None);
    };
    let len = bulk_length(line, limits)?.ok_or(ProtocolError::InvalidBulkLength)?;
    if before.saturating_add(len) > limits.max_command {
        return Err(ProtocolError::CommandTooBig(limits.max_command));
    }
    payload_span(buf, start, len)
}

/// `Some(len)` for a valid bulk length, `None` for `-1`.
fn bulk_length(line: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    match parse_i64(line) {
        Some(-1) => Ok(None),
        Some(len) => match usize::try_from(len) {
            Ok(len) if len <= limits.max_bulk => Ok(Some(len)),
            _ => Err(ProtocolError::InvalidBulkLength),
        },
        None => Err(ProtocolError::InvalidBulkLength),
    }
}

/// `[start, start + len)` and the offset after its `\r\n`, if all present.
/// This is the cheap "need more" path: it compares lengths and copies nothing.
fn payload_span(buf: &[u8], start: usize, len: usize) -> Parsed<(usize, usize)> {
    let end = start.checked_add(len).ok_or(ProtocolError::InvalidBulkLength)?;
    let Some(after) = end.checked_add(2) else { return Err(ProtocolError::InvalidBulkLength) };
    if buf.len() < after {
        return Ok(None);
    }
    if &buf[end..after] != b"\r\n" {
        return Err(ProtocolError::MissingBulkTerminator);
    }
    Ok(Some(((start, end), after)))
}

/// The line starting at `at` up to (excluding) its `\r\n`, and the offset after
/// it. A line whose content exceeds `max` bytes is `too_long`, found after
/// searching at most `max + 2` bytes. A line ended by a bare `\n` is returned
/// with that `\n`, so that every caller's validation rejects it.
fn header_line(buf: &[u8], at: usize, max: usize, too_long: ProtocolError) -> Parsed<&[u8]> {
    let rest = buf.get(at..).unwrap_or_default();
    let window = &rest[..rest.len().min(max.saturating_add(2))];
    match find_byte(b'\n', window) {
        Some(newline) => {
            let line = match rest[..newline].strip_suffix(b"\r") {
                Some(line) => line,
                None => &rest[..=newline],
            };
            Ok(Some((line, at + newline + 1)))
        }
        None if window.len() == max.saturating_add(2) => Err(too_long),
        None => Ok(None),
    }
}

fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// A strict decimal i64: an optional `-` and at least one digit, nothing else.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(digit - b'0');
        // Accumulate negatively so that i64::MIN parses.
        value = value.checked_mul(10)?.checked_sub(digit)?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Split an inline command line into words with Redis' `sdssplitargs` rules.
///
/// Outside quotes a word ends at a space, tab, `\r`, `\n` or NUL; a quote in
/// the middle of a word opens a quoted part of that word (`a"b c"` is `ab c`).
/// In double quotes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` are escapes and `\c`
/// is `c`; in single quotes only `\'` is. A closing quote must be followed by
/// whitespace or the end of the line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(words);
        }
        let (word, next) = split_word(line, i)?;
        words.push(word);
        i = next;
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// One word of an inline command starting at `i`, and the index after it.
fn split_word(line: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), ProtocolError> {
    let mut word = Vec::new();
    let mut quote = Quote::None;
    loop {
        let Some(&byte) = line.get(i) else {
            return match quote {
                Quote::None => Ok((word, i)),
                _ => Err(ProtocolError::UnbalancedQuotes),
            };
        };
        match quote {
            Quote::None => match byte {
                b' ' | b'\t' | b'\n' | b'\r' | 0 => return Ok((word, i)),
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                _ => word.push(byte),
            },
            Quote::Double => match byte {
                b'\\' if line.get(i + 1) == Some(&b'x') && hex_pair(line, i + 2).is_some() => {
                    word.extend(hex_pair(line, i + 2));
                    i += 3;
                }
                b'\\' if i + 1 < line.len() => {
                    i += 1;
                    word.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                }
                b'"' => {
                    closing_quote_ends_word(line, i)?;
                    return Ok((word, i + 1));
                }
                _ => word.push(byte),
            },
            Quote::Single => match byte {
                b'\\' if line.get(i + 1) == Some(&b'\'') => {
                    word.push(b'\'');
                    i += 1;
                }
                b'\'' => {
                    closing_quote_ends_word(line, i)?;
                    return Ok((word, i + 1));
                }
                _ => word.push(byte),
            },
        }
        i += 1;
    }
}

fn closing_quote_ends_word(line: &[u8], quote_at: usize) -> Result<(), ProtocolError> {
    match line.get(quote_at + 1) {
        Some(&next) if !is_space(next) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(()),
    }
}

fn hex_pair(line: &[u8], at: usize) -> Option<u8> {
    let high = (*line.get(at)? as char).to_digit(16)?;
    let low = (*line.get(at + 1)? as char).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

/// Parse any RESP2 value (a reply, on the client side) from the front of `buf`.
///
/// Same contract as [`parse_command`]: `Ok(None)` until the whole value is
/// present, then the value and the bytes it took. A simple string or error
/// that is not UTF-8 is decoded lossily (replies from Redis are ASCII).
pub fn parse_value(buf: &[u8], limits: &Limits) -> Parsed<Value> {
    // Scan first, so an incomplete reply costs no copying (see the module doc).
    match scan_value(buf, 0, limits, 0)? {
        None => Ok(None),
        Some(end) => Ok(build_value(&buf[..end], 0, limits, 0)?.map(|(value, used)| {
            debug_assert_eq!(used, end, "scan and build disagree on the value's end");
            (value, used)
        })),
    }
}

/// The end of the value starting at `at`, if it is complete; copies nothing.
fn scan_value(buf: &[u8], at: usize, limits: &Limits, depth: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    match kind {
        b'+' | b'-' => Ok(reply_line(buf, at + 1, limits)?.map(|(_, next)| next)),
        b':' => match reply_line(buf, at + 1, limits)? {
            Some((line, next)) => parse_i64(line).map(|_| Some(next)).ok_or(ProtocolError::InvalidInteger),
            None => Ok(None),
        },
        b'$' => {
            let Some((line, start)) =
                header_line(buf, at + 1, limits.max_inline, ProtocolError::BulkCountTooBig)?
            else {
                return Ok(None);
            };
            match bulk_length(line, limits)? {
                None => Ok(Some(start)),
                Some(len) => Ok(payload_span(buf, start, len)?.map(|(_, after)| after)),
            }
        }
        b'*' => {
            let Some((count, mut next)) = array_header(buf, at, limits, depth)? else { return Ok(None) };
            for _ in 0..count.unwrap_or(0) {
                match scan_value(buf, next, limits, depth + 1)? {
                    Some(after) => next = after,
                    None => return Ok(None),
                }
            }
            Ok(Some(next))
        }
        other => Err(ProtocolError::InvalidType(ShownByte(other))),
    }
}

/// The value starting at `at`, copied out. Called only on scanned input, but
/// still returns errors rather than assuming, so it cannot panic either way.
fn build_value(buf: &[u8], at: usize, limits: &Limits, depth: usize) -> Parsed<Value> {
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let text = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
    match kind {
        b'+' => Ok(reply_line(buf, at + 1, limits)?.map(|(line, next)| (Value::Simple(text(line)), next))),
        b'-' => Ok(reply_line(buf, at + 1, limits)?.map(|(line, next)| (Value::Error(text(line)), next))),
        b':' => match reply_line(buf, at + 1, limits)? {
            Some((line, next)) => {
                let value = parse_i64(line).ok_or(ProtocolError::InvalidInteger)?;
                Ok(Some((Value::Integer(value), next)))
            }
            None => Ok(None),
        },
        b'$' => {
            let Some((line, start)) =
                header_line(buf, at + 1, limits.max_inline, ProtocolError::BulkCountTooBig)?
            else {
                return Ok(None);
            };
            match bulk_length(line, limits)? {
                None => Ok(Some((Value::Bulk(None), start))),
                Some(len) => Ok(payload_span(buf, start, len)?
                    .map(|((start, end), after)| (Value::bulk(&buf[start..end]), after))),
            }
        }
        b'*' => {
            let Some((count, mut next)) = array_header(buf, at, limits, depth)? else { return Ok(None) };
            let Some(count) = count else { return Ok(Some((Value::Array(None), next))) };
            // The scan proved `count` elements are present, each at least 3 bytes,
            // so this capacity is bounded by the input's size.
            let mut elements = Vec::with_capacity(count.min(buf.len() / 3));
            for _ in 0..count {
                let Some((element, after)) = build_value(buf, next, limits, depth + 1)? else {
                    return Ok(None);
                };
                elements.push(element);
                next = after;
            }
            Ok(Some((Value::Array(Some(elements)), next)))
        }
        other => Err(ProtocolError::InvalidType(ShownByte(other))),
    }
}

/// `*<n>\r\n` at `at`: `Some(n)` elements or `None` for the null array, and
/// the offset of the first element.
fn array_header(buf: &[u8], at: usize, limits: &Limits, depth: usize) -> Parsed<Option<usize>> {
    if depth >= limits.max_depth {
        return Err(ProtocolError::TooDeep(limits.max_depth));
    }
    let Some((line, next)) =
        header_line(buf, at + 1, limits.max_inline, ProtocolError::MultibulkCountTooBig)?
    else {
        return Ok(None);
    };
    match parse_i64(line) {
        Some(-1) => Ok(Some((None, next))),
        Some(count) => match usize::try_from(count) {
            Ok(count) if count <= limits.max_args => Ok(Some((Some(count), next))),
            _ => Err(ProtocolError::InvalidMultibulkLength),
        },
        None => Err(ProtocolError::InvalidMultibulkLength),
    }
}

/// A simple-string, error or integer line: must end in `\r\n` and contain no `\r`/`\n`.
fn reply_line<'a>(buf: &'a [u8], at: usize, limits: &Limits) -> Parsed<&'a [u8]> {
    let parsed = header_line(buf, at, limits.max_inline, ProtocolError::InvalidLine)?;
    if let Some((line, _)) = parsed {
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(ProtocolError::InvalidLine);
        }
    }
    Ok(parsed)
}

/// Append the RESP2 encoding of `value` to `out`. `\r` and `\n` in a simple
/// string or error become spaces, as Redis does, since they would end the line.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Simple(text) => encode_line(b'+', text.as_bytes(), out),
        Value::Error(message) => encode_line(b'-', message.as_bytes(), out),
        Value::Integer(value) => encode_int(*value, out),
        Value::Bulk(Some(bytes)) => encode_bulk(bytes, out),
        Value::Bulk(None) => encode_null_bulk(out),
        Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Value::Array(Some(elements)) => {
            encode_array_header(elements.len(), out);
            for element in elements {
                encode(element, out);
            }
        }
    }
}

fn encode_line(kind: u8, text: &[u8], out: &mut Vec<u8>) {
    out.push(kind);
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// `+OK\r\n`.
pub fn encode_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// `+<text>\r\n` (`\r`, `\n` become spaces).
pub fn encode_simple(text: &str, out: &mut Vec<u8>) {
    encode_line(b'+', text.as_bytes(), out);
}

/// `-<message>\r\n` (`\r`, `\n` become spaces). By convention the message
/// starts with an upper-case code: `ERR unknown command`, `MOVED 3 127.0.0.1:7001`.
pub fn encode_error(message: &str, out: &mut Vec<u8>) {
    encode_line(b'-', message.as_bytes(), out);
}

/// `:<value>\r\n`.
pub fn encode_int(value: i64, out: &mut Vec<u8>) {
    out.push(b':');
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`.
pub fn encode_bulk(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'$');
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `$-1\r\n`, the reply for a missing key.
pub fn encode_null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*<len>\r\n`; the caller then encodes `len` elements.
pub fn encode_array_header(len: usize, out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A client command: an array of bulk strings.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    encode_array_header(args.len(), out);
    for arg in args {
        encode_bulk(arg, out);
    }
}
