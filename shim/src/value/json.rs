//! Writes a [`Value`] as compact JSON.

use abi_stable::std_types::RVec;

use super::Value;

/// A growable byte buffer that JSON can be written into: `Vec<u8>` or the ABI-stable `RVec<u8>`
/// (a frame batch's buffer, written in place).
pub trait ByteSink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
    /// Appends one byte.
    fn put_byte(&mut self, byte: u8);
    /// Makes room for `n` more bytes.
    fn reserve_more(&mut self, n: usize);
}

/// Implements [`ByteSink`] for a byte vector type, given its method that appends a slice.
macro_rules! byte_sink {
    ($($vec:ty => $extend:ident),+ $(,)?) => {$(
        impl ByteSink for $vec {
            #[inline]
            fn put(&mut self, bytes: &[u8]) {
                self.$extend(bytes);
            }
            #[inline]
            fn put_byte(&mut self, byte: u8) {
                self.push(byte);
            }
            #[inline]
            fn reserve_more(&mut self, n: usize) {
                if self.capacity() - self.len() < n {
                    self.reserve(n);
                }
            }
        }
    )+};
}

// `RVec::extend_from_slice` pushes element by element; `extend_from_copy_slice` is one memcpy.
byte_sink!(Vec<u8> => extend_from_slice, RVec<u8> => extend_from_copy_slice);

/// For each byte: 0 when it needs no escaping, otherwise the character after the backslash
/// (`u` for the `\u00XX` form).
static ESCAPE: [u8; 256] = {
    let mut table = [0_u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

pub(super) fn write<B: ByteSink>(value: &Value, out: &mut B) {
    match value {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::I64(i) => out.put(itoa::Buffer::new().format(*i).as_bytes()),
        Value::U64(u) => out.put(itoa::Buffer::new().format(*u).as_bytes()),
        Value::F64(f) if f.is_finite() => {
            out.put(ryu::Buffer::new().format_finite(*f).as_bytes());
        }
        // JSON has no NaN or infinity.
        Value::F64(_) => out.put(b"null"),
        Value::String(s) => write_str(s.as_str(), out),
        Value::Bytes(bytes) => {
            out.put_byte(b'[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                out.put(itoa::Buffer::new().format(*b).as_bytes());
            }
            out.put_byte(b']');
        }
        Value::Array(items) => {
            out.put_byte(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write(item, out);
            }
            out.put_byte(b']');
        }
        Value::Object(object) => {
            out.put_byte(b'{');
            for (i, (key, item)) in object.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write_str(key, out);
                out.put_byte(b':');
                write(item, out);
            }
            out.put_byte(b'}');
        }
    }
}

/// Whether any of the 8 bytes in `word` needs escaping: below 0x20, `"` or `\\`.
/// (The classic SWAR tests: each is exact about whether such a byte exists.)
#[inline]
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote & HIGHS;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash & HIGHS;
    (below_space | quote | backslash) != 0
}

/// Writes `s` as a quoted JSON string, copying runs that need no escape in one go and
/// skipping over them 8 bytes at a time.
pub(super) fn write_str<B: ByteSink>(s: &str, out: &mut B) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve_more(bytes.len() + 2);
    out.put_byte(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !word_needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let esc = ESCAPE[b as usize];
            if esc != 0 {
                out.put(&bytes[start..i]);
                if esc == b'u' {
                    out.put(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(b >> 4) as usize],
                        HEX[(b & 0xf) as usize],
                    ]);
                } else {
                    out.put(&[b'\\', esc]);
                }
                start = i + 1;
            }
            i += 1;
        }
    }
    out.put(&bytes[start..]);
    out.put_byte(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::Object;
    use super::*;

    #[test]
    fn escapes_control_quote_and_backslash() {
        let v = Value::from("a\"b\\c\nd\u{1}é");
        assert_eq!(v.to_json(), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn escapes_wherever_they_fall_in_a_word() {
        // Every position relative to the 8-byte words, every kind of byte that needs escaping.
        for special in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
            for at in 0..20 {
                let mut text: String = "abcdefghijklmnopqrst".chars().take(20).collect();
                text.replace_range(at..=at, &special.to_string());
                let mut expected = String::from("\"");
                for c in text.chars() {
                    match c {
                        '"' => expected.push_str("\\\""),
                        '\\' => expected.push_str("\\\\"),
                        '\n' => expected.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            expected.push_str(&format!("\\u{:04x}", c as u32))
                        }
                        c => expected.push(c),
                    }
                }
                expected.push('"');
                assert_eq!(
                    Value::from(text.as_str()).to_json(),
                    expected,
                    "{special:?} at {at}"
                );
            }
        }
        // Bytes above 0x7f (UTF-8) never need escaping.
        assert_eq!(Value::from("ééééé\u{7f}").to_json(), "\"ééééé\u{7f}\"");
    }

    #[test]
    fn writes_nested_values_compactly() {
        let mut o = Object::new();
        o.insert("n", Value::Null);
        o.insert(
            "a",
            vec![Value::from(1), Value::F64(1.5), Value::Bool(true)].into(),
        );
        o.insert("u", Value::U64(u64::MAX));
        o.insert("nan", Value::F64(f64::NAN));
        o.insert("b", Value::Bytes(vec![1_u8, 255].into()));
        assert_eq!(
            Value::Object(o).to_json(),
            r#"{"n":null,"a":[1,1.5,true],"u":18446744073709551615,"nan":null,"b":[1,255]}"#
        );
    }
}
