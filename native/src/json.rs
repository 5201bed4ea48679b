//! A strict scanner for the flat JSON objects of exchange frames.
//!
//! It accepts a subset of JSON and never a superset: whatever it is unsure of (an escape in a
//! string, a nested value it does not need, a duplicate key) makes it give up, and the line
//! goes back to the Python parser, which decides. So a frame decoded here is one the Python
//! parser would decode to the same values.

/// A scalar value, as the bytes of the line it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// A string without escapes: its bytes between the quotes.
    Str(&'a [u8]),
    /// An integer literal (`-?(0|[1-9][0-9]*)`), as written.
    Int(&'a [u8]),
    /// A number with a fraction or an exponent.
    Num,
    Bool(bool),
    Null,
}

pub struct Scanner<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, pos: 0 }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b' ' || b == b'\t' || b == b'\n' || b == b'\r' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` after optional whitespace.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string without escapes or control characters; `None` for anything else.
    #[inline]
    pub fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek() != Some(b'"') {
            return None;
        }
        // Frame strings are short: a plain loop beats a SIMD search here.
        let start = self.pos + 1;
        let mut i = start;
        loop {
            let b = *self.bytes.get(i)?;
            if b == b'"' {
                self.pos = i + 1;
                return Some(&self.bytes[start..i]);
            }
            if b == b'\\' || b < 0x20 {
                return None; // an escape or a raw control character: the Python parser decides
            }
            i += 1;
        }
    }

    /// A JSON number; `Int` when it has neither fraction nor exponent.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.pos;
        let b = self.bytes;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            let digits = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let digits = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        self.pos = i;
        if integer {
            return Some(Scalar::Int(&b[start..i]));
        }
        // A float the Python decoder would reject as out of range, or one close to it: give up.
        let text = std::str::from_utf8(&b[start..i]).ok()?;
        let value: f64 = text.parse().ok()?;
        if !value.is_finite() || value.abs() > 1e300 {
            return None;
        }
        Some(Scalar::Num)
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// A scalar value after optional whitespace; `None` for objects, arrays and bad JSON.
    pub fn scalar(&mut self) -> Option<Scalar<'a>> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b't' => self.literal(b"true").then_some(Scalar::Bool(true)),
            b'f' => self.literal(b"false").then_some(Scalar::Bool(false)),
            b'n' => self.literal(b"null").then_some(Scalar::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// True when only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.bytes.len()
    }
}

/// An integer literal as i64, if it is in `min..=max` (a literal is `-?(0|[1-9][0-9]*)`).
pub fn int_in(literal: &[u8], min: i64, max: i64) -> Option<i64> {
    let (negative, digits) = match literal.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, literal),
    };
    if digits.len() > 19 {
        return None;
    }
    let mut value: i128 = 0;
    for &d in digits {
        value = value * 10 + i128::from(d - b'0');
    }
    if negative {
        value = -value;
    }
    (i128::from(min) <= value && value <= i128::from(max)).then_some(value as i64)
}

/// A decimal string as Python's `float()` reads it, for the spellings both read alike:
/// `[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Both round correctly, so the values are equal.
/// Anything else (`inf`, `1_000`, ` 1`, `.5`) is `None`, for the Python parser to decide.
pub fn decimal(text: &[u8]) -> Option<f64> {
    let mut i = 0;
    if matches!(text.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = i;
    while matches!(text.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    if i == digits {
        return None;
    }
    if text.get(i) == Some(&b'.') {
        i += 1;
        let fraction = i;
        while matches!(text.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == fraction {
            return None;
        }
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = i;
        while matches!(text.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == exponent {
            return None;
        }
    }
    if i != text.len() {
        return None;
    }
    // Only ASCII was accepted above, so this is valid UTF-8.
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_bounded_exactly() {
        assert_eq!(int_in(b"9223372036854775807", 0, i64::MAX), Some(i64::MAX));
        assert_eq!(int_in(b"9223372036854775808", 0, i64::MAX), None);
        assert_eq!(int_in(b"-1", 0, i64::MAX), None);
        assert_eq!(int_in(b"-9223372036854775808", i64::MIN, 0), Some(i64::MIN));
        assert_eq!(int_in(b"99999999999999999999", 0, i64::MAX), None);
    }

    #[test]
    fn decimals_take_only_the_shared_spellings() {
        assert_eq!(decimal(b"61000.50"), Some(61000.5));
        assert_eq!(decimal(b"1e-8"), Some(1e-8));
        assert_eq!(decimal(b"+2.5E3"), Some(2500.0));
        assert_eq!(decimal(b"0.00000000"), Some(0.0));
        for bad in [
            &b"inf"[..],
            b"nan",
            b"1_0",
            b" 1",
            b".5",
            b"5.",
            b"1e",
            b"",
            b"-",
            b"1.2.3",
        ] {
            assert_eq!(decimal(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn scalars_refuse_escapes_and_malformed_numbers() {
        assert_eq!(Scanner::new(br#""a\"b""#).scalar(), None);
        assert_eq!(Scanner::new(b"01").scalar(), Some(Scalar::Int(b"0"))); // then a stray `1`
        assert_eq!(Scanner::new(b"-0").scalar(), Some(Scalar::Int(b"-0")));
        assert_eq!(Scanner::new(b"1.0").scalar(), Some(Scalar::Num));
        assert_eq!(Scanner::new(b"1e400").scalar(), None);
        assert_eq!(Scanner::new(b"1.").scalar(), None);
        assert_eq!(Scanner::new(b"tru").scalar(), None);
        assert_eq!(Scanner::new(b"{}").scalar(), None);
    }
}
