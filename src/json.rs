//! JSON text written by serde_json, faster: every reply is written through here.
//!
//! serde_json writes a value as many short pieces (a quote, a colon, a key, a value). Into a
//! `Vec<u8>` each piece is a call to `memcpy`, which costs more than the few bytes it copies;
//! [`Text`] copies short pieces in place. It halves the time to write a tool's answer. This
//! module depends on nothing else in the crate: the tools and the wire formats both use it.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

/// JSON text, as serde_json wrote it: a tool's answer, written once and placed as it is into
/// whichever frame the wire format puts around it (an envelope's `result`, or `tools/call`'s
/// `structuredContent` and its text copy, [`Writer::string_of`]).
#[derive(Debug, Clone)]
pub struct Json {
    text: String,
    /// A part of the text whose escaped form, as the inside of a JSON string, is known
    /// already: the part of an answer that stays the same from call to call is escaped once,
    /// not for every text copy.
    escaped: Option<Escaped>,
}

#[derive(Debug, Clone)]
struct Escaped {
    at: Range<usize>,
    text: Arc<str>,
}

impl Json {
    pub fn get(&self) -> &str {
        &self.text
    }
}

/// The same text is the same JSON, whichever part of it was escaped already.
impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Json {}

/// `text` escaped as the inside of a JSON string, for [`Writer::raw_escaped`].
pub fn escaped(text: &str) -> Arc<str> {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    // Writing into a `String` does not fail.
    let _ = escape(&mut out, text);
    Arc::from(out)
}

/// Writes `value` as JSON text; `capacity` is the length expected, so that the text is not
/// grown (and copied) while it is written.
pub fn to_json(value: &impl Serialize, capacity: usize) -> Result<Json, serde_json::Error> {
    let mut writer = Writer::with_capacity(capacity);
    writer.value(value);
    writer.finish_json()
}

/// Writes `value` as JSON text, as `serde_json::to_string` does.
pub fn to_string(value: &impl Serialize, capacity: usize) -> Result<String, serde_json::Error> {
    let mut writer = Writer::with_capacity(capacity);
    writer.value(value);
    writer.finish()
}

/// JSON text written piece by piece: JSON text already written ([`Writer::raw`]) and values
/// ([`Writer::value`]), for a frame whose shape is fixed around the values it carries.
pub struct Writer {
    text: Text,
    /// The first value serde_json could not write (a map whose keys are not strings).
    failed: Option<serde_json::Error>,
    /// The part written by [`Writer::raw_escaped`], and its escaped form.
    escaped: Option<Escaped>,
}

impl Writer {
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            text: Text(String::with_capacity(capacity)),
            failed: None,
            escaped: None,
        }
    }

    /// Appends text that is JSON already, or a piece of a frame (`{"result":`).
    pub fn raw(&mut self, json: &str) {
        self.text.0.push_str(json);
    }

    /// Appends JSON text whose escaped form ([`escaped`]) is known, for the text copy
    /// [`Writer::string_of`] writes of the finished [`Json`]. One part of a text is kept so; a
    /// second is appended as [`Writer::raw`] appends it.
    pub fn raw_escaped(&mut self, json: &str, escaped: &Arc<str>) {
        let start = self.text.0.len();
        self.raw(json);
        if self.escaped.is_none() {
            self.escaped = Some(Escaped {
                at: start..self.text.0.len(),
                text: Arc::clone(escaped),
            });
        }
    }

    /// Appends `value`, written as JSON.
    pub fn value(&mut self, value: &impl Serialize) {
        if let Err(err) = serde_json::to_writer(&mut self.text, value) {
            self.failed.get_or_insert(err);
        }
    }

    /// Appends `text` as a JSON string: what [`Writer::value`] writes for it, without going
    /// through serde_json's writer piece by piece.
    pub fn string(&mut self, text: &str) {
        let out = &mut self.text.0;
        // Most bytes stand for themselves; an escape may need more room as it is written.
        out.reserve(text.len() + 2);
        out.push('"');
        escape_bytes(out, text);
        out.push('"');
    }

    /// Appends `json`'s text as a JSON string, as [`Writer::string`] does, copying the part
    /// whose escaped form it carries rather than escaping it again.
    pub fn string_of(&mut self, json: &Json) {
        let Some(Escaped { at, text: escaped }) = &json.escaped else {
            return self.string(json.get());
        };
        let (Some(before), Some(after)) = (json.text.get(..at.start), json.text.get(at.end..))
        else {
            return self.string(json.get());
        };
        let out = &mut self.text.0;
        out.reserve(before.len() + escaped.len() + after.len() * 5 / 4 + 2);
        out.push('"');
        escape_bytes(out, before);
        out.push_str(escaped);
        escape_bytes(out, after);
        out.push('"');
    }

    /// The text as [`Json`], unless a value could not be written.
    pub fn finish_json(mut self) -> Result<Json, serde_json::Error> {
        let escaped = self.escaped.take();
        self.finish().map(|text| Json { text, escaped })
    }

    /// The text, unless a value could not be written.
    pub fn finish(self) -> Result<String, serde_json::Error> {
        match self.failed {
            Some(err) => Err(err),
            None => Ok(self.text.0),
        }
    }
}

/// [`escape`] into a `String`, which cannot fail.
fn escape_bytes(out: &mut String, text: &str) {
    let _ = escape(out, text);
}

/// Writes `text` as the inside of a JSON string (no quotes), escaped as serde_json escapes it:
/// the runs between escapes are written whole. Byte by byte was dearer even for the text copy
/// of a tools/call answer, with a quote every few bytes: 2,800 instructions a call against
/// 2,330 (callgrind). The runs are found eight bytes at a time ([`next_escape`]): most text
/// written (log records' keys and values, answers) has few escapes or none.
pub fn escape<W: fmt::Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(found) = bytes.get(start..).and_then(next_escape) {
        let at = start + found;
        let byte = bytes.get(at).copied().unwrap_or_default();
        // An escaped byte is ASCII, so `start` and `at` are on character boundaries.
        out.write_str(text.get(start..at).unwrap_or_default())?;
        start = at + 1;
        let escape = ESCAPES[usize::from(byte)];
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.write_str("\\u00")?;
            out.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(byte & 0xf)]))?;
        } else {
            out.write_char('\\')?;
            out.write_char(char::from(escape))?;
        }
    }
    out.write_str(text.get(start..).unwrap_or_default())
}

/// Where the first byte of `bytes` that JSON escapes is (a control character, `"` or `\`),
/// looked for in words of eight bytes. In a word, a byte below 0x20 borrows out of its high
/// bit when 0x20 is taken from it, and so does a byte equal to `"` or `\` when 1 is taken from
/// it XORed with that byte; a byte of 0x80 or above is masked out by its own high bit. A borrow
/// can carry into the bytes above the first such byte, but never below it, so the lowest flagged
/// byte is the first to escape.
fn next_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let flagged = |word: u64| {
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        (control | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))))
            & HIGH
    };
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        // Little-endian: the first byte is the lowest.
        let found = flagged(u64::from_le_bytes(eight));
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| ESCAPES[usize::from(byte)] != 0)
        .map(|at| offset + at)
}

/// How each byte is written in a JSON string, as serde_json writes it: itself (0), after a
/// backslash (`"`, `\` and the control characters with a short escape), or as `\u00XX` (`u`,
/// the other control characters). Bytes of 0x80 and above are parts of UTF-8 characters,
/// written as they are.
const ESCAPES: [u8; 256] = {
    let mut escapes = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        escapes[byte] = b'u';
        byte += 1;
    }
    escapes[0x08] = b'b';
    escapes[0x09] = b't';
    escapes[0x0a] = b'n';
    escapes[0x0c] = b'f';
    escapes[0x0d] = b'r';
    escapes[b'"' as usize] = b'"';
    escapes[b'\\' as usize] = b'\\';
    escapes
};

/// The text written so far. serde_json writes its pieces as bytes; each is whole UTF-8 (a
/// piece of a `str` between escapes, a number, punctuation), so each is checked as it comes
/// and the text is never checked whole. A piece that were not UTF-8 would fail the value.
struct Text(String);

/// Pieces up to this long are copied byte by byte, in place; longer ones by `memcpy`.
const SHORT: usize = 16;

impl Text {
    fn checked(&mut self, bytes: &[u8]) -> io::Result<()> {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                self.0.push_str(text);
                Ok(())
            }
            Err(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8")),
        }
    }
}

impl io::Write for Text {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > SHORT {
            return self.checked(bytes);
        }
        self.0.reserve(bytes.len());
        for (at, &byte) in bytes.iter().enumerate() {
            if !byte.is_ascii() {
                return self.checked(bytes.get(at..).unwrap_or_default());
            }
            self.0.push(char::from(byte));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// [`escape`] writes what serde_json writes inside a string's quotes, for every byte
    /// that needs an escape, at the start, the end and between runs of text.
    #[test]
    fn escape_is_serde_jsons() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [
            "",
            "plain",
            "\"",
            "\\\\",
            "a\nb\tc\u{1}\u{1f}d",
            "é ✓ 🦀 \u{7f} \"quoted\"",
            every_ascii.as_str(),
        ] {
            let mut out = String::new();
            escape(&mut out, text).unwrap();
            assert_eq!(format!("\"{out}\""), serde_json::to_string(text).unwrap());
        }
    }

    /// The same for text of every length up to 40 bytes with an escape (each kind, and the
    /// bytes around the kinds: 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80 and above) at every
    /// position, alone, after another and in text with characters of two to four bytes; and
    /// for random text.
    #[test]
    fn escape_is_serde_jsons_at_every_position() {
        let specials = [
            "\0", "\u{8}", "\t", "\n", "\u{c}", "\r", "\u{1f}", "\"", "\\", " ", "!", "#", "[",
            "]", "\u{7f}", "\u{80}", "é", "✓", "🦀", "\u{a2}", "\u{dc}",
        ];
        let check = |text: &str| {
            let mut out = String::new();
            escape(&mut out, text).unwrap();
            assert_eq!(
                format!("\"{out}\""),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        };
        for length in 0..40 {
            for special in specials {
                for at in 0..=length {
                    let plain = "a".repeat(length);
                    let text = format!("{}{special}{}", &plain[..at], &plain[at..]);
                    check(&text);
                    check(&format!("{text}\"{special}"));
                    check(&text.replace('a', "é"));
                }
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let length = (next() % 64) as usize;
            let text: String = (0..length)
                .map(|_| match next() % 4 {
                    0 => char::from((next() % 0x80) as u8),
                    1 => char::from_u32((next() % 0x800) as u32).unwrap_or('x'),
                    _ => char::from(b'a' + (next() % 26) as u8),
                })
                .collect();
            check(&text);
        }
    }

    /// The text is serde_json's, byte for byte, for pieces short and long, escapes, non-ASCII
    /// text and every kind of value; a frame written around one holds it as it is.
    #[test]
    fn text_is_serde_jsons() {
        let values = [
            json!(null),
            json!({"a": 1, "b": [true, false, null, 1.5, -7], "c": {"d": "e"}}),
            json!("quote \" backslash \\ newline \n tab \t bell \u{7} é ✓ 🦀"),
            json!({"long key that is longer than sixteen bytes": "x".repeat(1000)}),
            json!(["", "\u{0}", "\u{1f}", "/", "\u{7f}"]),
            json!(u64::MAX),
            json!(i64::MIN),
        ];
        for value in values {
            let expected = serde_json::to_string(&value).unwrap();
            for capacity in [0, 1, 64, 4096] {
                assert_eq!(to_string(&value, capacity).unwrap(), expected);
                assert_eq!(to_json(&value, capacity).unwrap().get(), expected);
            }
            let mut framed = Writer::with_capacity(0);
            framed.raw("[\"x\",");
            framed.value(&value);
            framed.raw("]");
            assert_eq!(framed.finish().unwrap(), format!("[\"x\",{expected}]"));
            let back: Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(back, value);
        }
    }

    /// A value serde_json cannot write (a map keyed by something other than strings) is an
    /// error, never text cut short.
    /// A string is written as serde_json writes it: every ASCII character alone and between
    /// others, non-ASCII text, long text, and a tool's answer as the text copy carries it.
    #[test]
    fn strings_are_written_as_serde_writes_them() {
        let mut texts: Vec<String> = (0..=0x7f_u8)
            .map(|byte| char::from(byte).to_string())
            .collect();
        texts.extend((0..=0x7f_u8).map(|byte| format!("a{}b", char::from(byte))));
        texts.extend(
            [
                "",
                "é ✓ 🦀 \u{2028} \u{2029} \u{fffd}",
                "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
                "é\"\u{1}✓🦀\\é",
                r#"{"credentials":{"access_key_id":"AKIA****MPLE"},"timestamp":"2026-11-25T00:00:00.000Z"}"#,
            ]
            .map(str::to_owned),
        );
        texts.push("\"\\\n".repeat(2000));
        for text in texts {
            let mut written = Writer::with_capacity(0);
            written.string(&text);
            assert_eq!(
                written.finish().unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// The text copy of JSON with a part escaped already is the copy of its whole text, with
    /// that part at the start, in the middle, at the end or the whole; a second such part is
    /// escaped as any other text.
    #[test]
    fn known_escapes_are_copied_where_they_belong() {
        let parts = [
            "",
            r#"{"a":"#,
            r#""é \ ✓
","b":[1,null]"#,
            "\"\u{1}\"",
        ];
        for before in parts {
            for known in parts {
                for after in parts {
                    let mut json = Writer::with_capacity(0);
                    json.raw(before);
                    json.raw_escaped(known, &escaped(known));
                    json.raw_escaped(after, &Arc::from("not this"));
                    let json = json.finish_json().unwrap();
                    let whole = format!("{before}{known}{after}");
                    assert_eq!(json.get(), whole);
                    let mut copy = Writer::with_capacity(0);
                    copy.string_of(&json);
                    assert_eq!(
                        copy.finish().unwrap(),
                        serde_json::to_string(&whole).unwrap()
                    );
                }
            }
        }
        let plain = to_json(&json!({"q": "\""}), 0).unwrap();
        let mut copy = Writer::with_capacity(0);
        copy.string_of(&plain);
        assert_eq!(copy.finish().unwrap(), r#""{\"q\":\"\\\"\"}""#);
    }

    #[test]
    fn a_value_that_cannot_be_written_is_an_error() {
        let map = std::collections::BTreeMap::from([(vec![1u8], 1)]);
        assert!(to_string(&map, 0).is_err());
        let mut framed = Writer::with_capacity(0);
        framed.raw("[");
        framed.value(&map);
        framed.raw("]");
        assert!(framed.finish().is_err());
    }
}
