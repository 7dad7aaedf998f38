//! A validating, single-pass walk over JSON text that builds nothing: the
//! handlers read the few fields they need from large documents (an order's
//! item prices, a day's records) and skip the rest, without a tree of
//! [`Value`](serde_json::Value)s and without a second pass to check the
//! text.
//!
//! [`Scanner`] accepts exactly what serde_json accepts when it parses text
//! into a `Value` (RFC 8259; strings may not hold raw control characters
//! or unpaired surrogate escapes; nesting at most 128 deep), except
//! numbers too large for an `f64`, which it leaves to whoever reads them
//! ([`amount`]). When the text is not JSON, [`invalid_json`] asks serde_json
//! for its message, so errors read as they did.
//!
//! The walk is driven by the caller: [`Scanner::object`] hands over each
//! member's key, and the caller reads the value (a nested walk, or
//! [`Scanner::skip_value`], which returns its span).

use std::borrow::Cow;
use std::ops::Range;

use crate::kit::numbers::Amount;

/// The text is not JSON. Where and why comes from [`invalid_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// serde_json refuses the 128th level of nesting.
const MAX_DEPTH: usize = 127;

/// Bytes that end the plain run of a string: the quote, the backslash and
/// the control characters.
const STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A position in JSON text, moving forward as values are read.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
            depth: 0,
        }
    }

    /// The current position (after [`Scanner::skip_whitespace`], the
    /// start of the next value).
    pub fn at(&self) -> usize {
        self.at
    }

    /// Moves past whitespace.
    pub fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    /// The kind of the next value, in the words of error messages.
    pub fn kind(&mut self) -> &'static str {
        self.skip_whitespace();
        kind(self.text, self.at)
    }

    /// The first byte of the next value, if any.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.get(self.at).copied()
    }

    /// Checks that only whitespace is left.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        self.skip_whitespace();
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Invalid> {
        if self.text.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Reads the next value, whatever it is, and returns its span.
    pub fn skip_value(&mut self) -> Result<Range<usize>, Invalid> {
        self.skip_whitespace();
        let start = self.at;
        match self.text.get(self.at) {
            Some(b'"') => self.string().map(|_| ())?,
            Some(b'{') => self.object(|scanner, _| scanner.skip_value().map(|_| ()))?,
            Some(b'[') => self.array(|scanner| scanner.skip_value().map(|_| ()))?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(Invalid),
        }
        Ok(start..self.at)
    }

    /// Reads the string that starts here; returns its span, quotes
    /// included.
    pub fn string(&mut self) -> Result<Range<usize>, Invalid> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            let rest = self.text.get(self.at..).unwrap_or_default();
            self.at += rest
                .iter()
                .position(|&b| STRING_STOP[usize::from(b)])
                .unwrap_or(rest.len());
            match self.text.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(start..self.at);
                }
                Some(b'\\') => self.escape()?,
                _ => return Err(Invalid),
            }
        }
    }

    /// Reads an escape (at its backslash), as serde_json does when it
    /// decodes a string: a surrogate must come in a pair.
    fn escape(&mut self) -> Result<(), Invalid> {
        self.at += 1;
        match self.text.get(self.at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.at += 1;
                Ok(())
            }
            Some(b'u') => {
                self.at += 1;
                match self.hex4()? {
                    0xDC00..=0xDFFF => Err(Invalid),
                    0xD800..=0xDBFF => {
                        self.expect(b'\\')?;
                        self.expect(b'u')?;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(Invalid),
                        }
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(Invalid),
        }
    }

    fn hex4(&mut self) -> Result<u16, Invalid> {
        let digits = self.text.get(self.at..self.at + 4).ok_or(Invalid)?;
        let mut n = 0u16;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Invalid),
            };
            n = n * 16 + u16::from(v);
        }
        self.at += 4;
        Ok(n)
    }

    fn digits(&mut self) -> Result<(), Invalid> {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.text.get(self.at) {
            self.at += 1;
        }
        if self.at > start {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Invalid> {
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.text.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(Invalid),
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.text.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.text.get(self.at) {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn nest(&mut self) -> Result<(), Invalid> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Invalid)
        } else {
            Ok(())
        }
    }

    /// Reads the object that starts here: `member` gets each key's span
    /// (quotes included), with the scanner at the value, and must read the
    /// value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Range<usize>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        self.expect(b'{')?;
        self.nest()?;
        self.skip_whitespace();
        if self.text.get(self.at) == Some(&b'}') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            let before = self.at;
            member(self, key)?;
            if self.at == before {
                return Err(Invalid);
            }
            self.skip_whitespace();
            match self.text.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Reads the array that starts here: `element` gets the scanner at each
    /// element and must read it.
    pub fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        self.expect(b'[')?;
        self.nest()?;
        self.skip_whitespace();
        if self.text.get(self.at) == Some(&b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            let before = self.at;
            element(self)?;
            if self.at == before {
                return Err(Invalid);
            }
            self.skip_whitespace();
            match self.text.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }
}

/// serde_json's message for text [`Scanner`] refused, as `invalid JSON: …`.
pub fn invalid_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => format!("invalid JSON: {e}"),
        Ok(_) => "invalid JSON".to_owned(),
    }
}

/// The kind of the value starting at `at`, in the words of error messages.
pub fn kind(text: &[u8], at: usize) -> &'static str {
    match text.get(at) {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Decodes a JSON string (quotes included) that [`Scanner`] accepted:
/// borrowed unless it has escapes.
pub fn decode_string(quoted: &str) -> Cow<'_, str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(quoted);
    if inner.contains('\\') {
        Cow::Owned(serde_json::from_str::<String>(quoted).unwrap_or_default())
    } else {
        Cow::Borrowed(inner)
    }
}

/// Whether the JSON string `quoted` (quotes included) says `name`.
pub fn key_is(quoted: &str, name: &str) -> bool {
    // Escapes only make a string's text longer than what it says.
    match quoted.len().cmp(&(name.len() + 2)) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => &quoted.as_bytes()[1..quoted.len() - 1] == name.as_bytes(),
        std::cmp::Ordering::Greater => quoted.contains('\\') && decode_string(quoted) == name,
    }
}

/// A number's text as an [`Amount`], exactly as serde_json reads it into a
/// `Value` ([`Amount::from_number`]): whole numbers that fit `i64` stay
/// whole, everything else is serde_json's `f64`. `None` if serde_json
/// refuses it (out of `f64`'s range).
pub fn amount(number: &str) -> Option<Amount> {
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let negative = unsigned.len() < number.len();
    // Whole numbers of up to 18 digits cannot overflow.
    if !unsigned.is_empty() && unsigned.len() <= 18 && unsigned.bytes().all(|b| b.is_ascii_digit())
    {
        let magnitude = unsigned
            .bytes()
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        // serde_json reads `-0` as the float -0.0.
        return Some(match (negative, magnitude) {
            (true, 0) => Amount::Float(-0.0),
            (true, m) => Amount::Int(-m),
            (false, m) => Amount::Int(m),
        });
    }
    // Decimals of up to 15 digits without an exponent: serde_json divides
    // the digits (exact in f64) by a power of ten up to 1e22 (exact too), so
    // its result is the correctly rounded one, which is what `parse` gives.
    if let Some((whole, fraction)) = unsigned.split_once('.') {
        let digits = whole.len() + fraction.len();
        if digits <= 15
            && fraction.len() <= 22
            && !whole.is_empty()
            && whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return number.parse::<f64>().ok().map(Amount::Float);
        }
    }
    serde_json::from_str::<serde_json::Number>(number)
        .ok()
        .map(|n| Amount::from_number(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn accepts(text: &str) -> bool {
        let mut scanner = Scanner::new(text);
        scanner.skip_value().is_ok() && scanner.finish().is_ok()
    }

    #[test]
    fn accepts_what_serde_json_accepts_into_a_value() {
        let deep_ok = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        let deep_bad = format!("{}1{}", "[".repeat(128), "]".repeat(128));
        let cases: Vec<&str> = vec![
            "{}",
            " [ ] ",
            "0",
            "-0",
            "-0.5e-3",
            "1E+2",
            "123",
            "true",
            "false",
            "null",
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
            r#""\ud83d\ude00""#,
            r#"{"a": [1, {"b": null}], "c": "d", "a": 2}"#,
            "\"é ü\"",
            &deep_ok,
            &deep_bad,
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "1 2",
            "tru",
            "nul",
            "\"abc",
            "\"a\u{1}b\"",
            r#""\x""#,
            r#""\u12g4""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "[1] x",
            "NaN",
            "[\"a\" \"b\"]",
        ];
        for text in cases {
            let expected = serde_json::from_str::<Value>(text).is_ok();
            assert_eq!(accepts(text), expected, "{text:?}");
        }
        // Numbers beyond f64 are left to whoever reads them.
        assert!(accepts("1e400"));
        assert!(serde_json::from_str::<Value>("1e400").is_err());
    }

    #[test]
    fn objects_and_arrays_hand_over_their_parts() {
        let text = r#" { "a" : [1, {"b": "}\"]"}] , "c\u0064":null,"e":-1.5e3 } "#;
        let mut found = Vec::new();
        let mut scanner = Scanner::new(text);
        scanner.skip_whitespace();
        scanner
            .object(|scanner, key| {
                let value = scanner.skip_value()?;
                found.push((decode_string(&text[key]).into_owned(), &text[value]));
                Ok(())
            })
            .expect("valid");
        scanner.finish().expect("nothing after");
        assert_eq!(
            found,
            vec![
                ("a".to_owned(), r#"[1, {"b": "}\"]"}]"#),
                ("cd".to_owned(), "null"),
                ("e".to_owned(), "-1.5e3"),
            ]
        );
        let text = "[1, [], \"x\"]";
        let mut elements = Vec::new();
        Scanner::new(text)
            .array(|scanner| {
                elements.push(&text[scanner.skip_value()?]);
                Ok(())
            })
            .expect("valid");
        assert_eq!(elements, vec!["1", "[]", "\"x\""]);
    }

    #[test]
    fn a_walk_that_does_not_read_a_value_is_refused() {
        let mut scanner = Scanner::new(r#"{"a": 1}"#);
        assert_eq!(scanner.object(|_, _| Ok(())), Err(Invalid));
    }

    #[test]
    fn messages_come_from_serde_json() {
        assert!(invalid_json("{not json").starts_with("invalid JSON: key must be a string"));
    }

    #[test]
    fn keys_compare_decoded() {
        assert!(key_is(r#""price""#, "price"));
        assert!(key_is(r#""pri\u0063e""#, "price"));
        assert!(!key_is(r#""prices""#, "price"));
        assert!(!key_is(r#""""#, "price"));
    }

    #[test]
    fn kinds_name_each_json_type() {
        for (text, expected) in [
            ("{}", "an object"),
            ("[]", "an array"),
            ("\"x\"", "a string"),
            ("true", "a boolean"),
            ("false", "a boolean"),
            ("null", "null"),
            ("-1", "a number"),
        ] {
            assert_eq!(Scanner::new(text).kind(), expected, "{text}");
        }
    }

    #[test]
    fn amounts_match_serde_json() {
        for text in [
            "0",
            "-0",
            "7",
            "-42",
            "123456789012345678",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616",
            "1.5",
            "19.99",
            "-0.0",
            "0.1",
            "0.30000000000000004",
            "1e2",
            "1E-7",
            "123456789012345.6",
            "1234567890123456.7",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "123456789.123456789",
            "0.000000000000000000000001",
        ] {
            let value: Value = serde_json::from_str(text).expect("number");
            assert_eq!(amount(text), Amount::from_value(&value), "{text}");
        }
        assert_eq!(amount("1e400"), None);
    }
}
