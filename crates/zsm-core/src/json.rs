//! A strict JSON reader and Go's JSON string encoding, for the documents
//! that must have one accepted spelling and one canonical encoding (the pin
//! set, docs/crypto.md §7).
//!
//! The reader keeps members in document order with repeats, so a repeated
//! or unknown member is seen rather than silently merged, and keeps numbers
//! as their text, so `1.0`, `1e0` or `-0` are not mistaken for `1` or `0`.
//! Strings read as Go's encoding/json reads them: each byte that is not part
//! of valid UTF-8, and each `\u` escape of a surrogate that is not half of a
//! pair, becomes U+FFFD, so both clients accept the same documents and make
//! the same of them (tests/rustcore compares them on mutated inputs).

/// A JSON value. Objects keep their members in order, repeats included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number's text as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// Parses exactly one JSON document (surrounding whitespace allowed,
/// nothing else after it).
pub(crate) fn parse(data: &[u8]) -> Result<Json, String> {
    let mut p = Parser { b: data, i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("data after the document at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.ws();
        match self.b.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat(b"}") {
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a member name");
                    }
                    let name = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return self.err("expected ':'");
                    }
                    let v = self.value(depth + 1)?;
                    members.push((name, v));
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(Json::Object(members));
                    }
                    return self.err("expected ',' or '}'");
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(Json::Array(items));
                    }
                    return self.err("expected ',' or ']'");
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') if self.eat(b"true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected character"),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as text.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while let Some(b'0'..=b'9') = p.b.get(p.i) {
                p.i += 1;
            }
            p.i - s
        };
        self.eat(b"-");
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.err("bad number"),
        }
        if self.eat(b".") && digits(self) == 0 {
            return self.err("bad fraction");
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).expect("ASCII");
        Ok(Json::Number(text.to_owned()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("truncated \\u escape")?;
        let s = std::str::from_utf8(h).map_err(|_| "bad \\u escape")?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return self.err("bad \\u escape");
        }
        self.i += 4;
        Ok(u32::from_str_radix(s, 16).expect("hex digits"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            match hi {
                                0xd800..=0xdbff => {
                                    // A pair only if a low surrogate escape
                                    // follows; else U+FFFD, and whatever
                                    // follows is read on its own (as Go does).
                                    let save = self.i;
                                    let lo = if self.eat(b"\\u") { self.hex4().ok() } else { None };
                                    match lo {
                                        Some(lo @ 0xdc00..=0xdfff) => {
                                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                                                .expect("a surrogate pair is a scalar value")
                                        }
                                        _ => {
                                            self.i = save;
                                            '\u{fffd}'
                                        }
                                    }
                                }
                                0xdc00..=0xdfff => '\u{fffd}',
                                cp => char::from_u32(cp).expect("not a surrogate"),
                            }
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return self.err("control character in a string"),
                _ => out.push(c),
            }
        }
        // Each byte that is not part of valid UTF-8 becomes U+FFFD, one per
        // byte, as Go's utf8.DecodeRune reads them.
        let mut text = String::with_capacity(out.len());
        for chunk in out.utf8_chunks() {
            text.push_str(chunk.valid());
            text.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
        }
        Ok(text)
    }
}

/// Appends `s` as a JSON string exactly as Go's `encoding/json` writes it:
/// `"` and `\` escaped, `\b \f \n \r \t` by name, other control characters
/// and `<`, `>`, `&` as `\u00xx`, U+2028 and U+2029 as `\u2028`/`\u2029`.
pub(crate) fn push_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// A strictly read object: every member once, each name known, the
/// required ones present.
pub(crate) fn members<'a>(
    v: &'a Json,
    known: &[&str],
    required: &[&str],
) -> Result<std::collections::HashMap<&'a str, &'a Json>, String> {
    let Json::Object(ms) = v else {
        return Err("not an object".into());
    };
    let mut out = std::collections::HashMap::new();
    for (name, value) in ms {
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown member {name:?}"));
        }
        if out.insert(name.as_str(), value).is_some() {
            return Err(format!("member {name:?} repeated"));
        }
    }
    if let Some(r) = required.iter().find(|r| !out.contains_key(*r)) {
        return Err(format!("member {r:?} missing"));
    }
    Ok(out)
}

impl Json {
    /// A string value.
    pub(crate) fn str(&self) -> Result<&str, String> {
        match self {
            Json::String(s) => Ok(s),
            _ => Err("not a string".into()),
        }
    }

    /// A non-negative integer written in plain decimal digits (no sign,
    /// fraction or exponent) that fits an i64, as Go's strconv.ParseInt
    /// reads it.
    pub(crate) fn integer(&self) -> Result<u64, String> {
        match self {
            Json::Number(t) if t.bytes().all(|c| c.is_ascii_digit()) => t
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0 && v.to_string() == *t)
                .map(|v| v as u64)
                .ok_or_else(|| format!("{t:?} is not a plain non-negative integer")),
            Json::Number(t) => Err(format!("{t:?} is not a plain non-negative integer")),
            _ => Err("not a number".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_reading() {
        let v = parse(br#" {"a":[1,"x\u00e9\ud83d\ude00",true,null],"b":{"c":-1.5e3}} "#).unwrap();
        let m = members(&v, &["a", "b"], &["a"]).unwrap();
        assert_eq!(m["b"], &Json::Object(vec![("c".into(), Json::Number("-1.5e3".into()))]));
        // Bytes that are not UTF-8, and surrogates that are not a pair, are
        // U+FFFD, one per byte or escape.
        for (doc, want) in [
            (&b"[\"a\xffb\xe2\x82c\"]"[..], "a\u{fffd}b\u{fffd}\u{fffd}c"),
            (br#"["\ud800"]"#, "\u{fffd}"),
            (br#"["\ud800\u0041"]"#, "\u{fffd}A"),
            (br#"["\udc00x"]"#, "\u{fffd}x"),
            (br#"["\ud800\ud800\udc00"]"#, "\u{fffd}\u{10000}"),
            (b"[\"\xed\xa0\x80\"]", "\u{fffd}\u{fffd}\u{fffd}"),
        ] {
            assert_eq!(
                parse(doc).unwrap(),
                Json::Array(vec![Json::String(want.into())]),
                "{doc:?}"
            );
        }
        for bad in [
            &br#"{"a":1}x"#[..],
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":"\u12"}"#,
            b"{\"a\":\"\x01\"}",
            br#"{"a":1,}"#,
            br#"[1 2]"#,
            b"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let dup = parse(br#"{"a":1,"a":1}"#).unwrap();
        assert!(members(&dup, &["a"], &[]).is_err());
        for (t, ok) in [("0", true), ("12", true), ("-0", false), ("1.0", false), ("1e0", false)] {
            assert_eq!(Json::Number(t.into()).integer().is_ok(), ok, "{t}");
        }
        assert!(Json::Number("9223372036854775808".into()).integer().is_err());
    }

    #[test]
    fn go_string_encoding() {
        let mut s = String::new();
        push_go_string(&mut s, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
    }
}
