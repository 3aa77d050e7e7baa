//! The fast path for decoding a `GET /v3/chats` page: a hand-written scanner that reads the
//! fields [`ChatsPage`] keeps and checks and skips the rest, without serde's per-field machinery
//! (about half of serde_json's time on the benchmark's pages).
//!
//! It is an optimisation, never a second opinion. [`chats_page`] returns `None` at the first
//! thing it does not handle exactly as serde_json would: a syntax error, a missing or repeated
//! field, a value of an unexpected type, a struct written as an array, a key with escapes, a
//! lone `\u` surrogate in a kept string, a score that is not a plain decimal of at most 15
//! digits, nesting deeper than [`MAX_DEPTH`]. The caller then decodes the page with serde_json,
//! which gives the value or the error. So for every input the result is serde_json's; the tests
//! below and the fuzz target compare the two.
//!
//! Pages as the API writes them (objects, plain keys, scores like `82` or `12.5`, any escapes
//! in string values) never take the slow path.

use std::borrow::Cow;

use crate::api::models::{Chat, ChatsPage, Handle, HealthScore, HealthStatus};

/// Decodes a chats page: this module's fast path, else serde_json (same value or error
/// for every input). The body is checked as UTF-8 once, up front, so neither decoder needs to
/// check every string again.
pub fn decode_chats_page(body: &[u8]) -> Result<ChatsPage<'_>, serde_json::Error> {
    match std::str::from_utf8(body) {
        // The fast path takes every well-formed page; anything else gets serde_json's verdict.
        Ok(text) => chats_page(text).map_or_else(|| serde_json::from_str(text), Ok),
        // Let the decoder report where the invalid bytes are.
        Err(_) => serde_json::from_slice(body),
    }
}

/// Deeper nesting falls back to serde_json: the scanner recurses, and this bounds its stack
/// whatever the body.
pub const MAX_DEPTH: u32 = 100;

/// Decodes a chats page, or `None` if the page needs serde_json (see the module docs).
pub fn chats_page(text: &str) -> Option<ChatsPage<'_>> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let (mut chats, mut next_cursor) = (None, None);
    s.object(|s, key| match key {
        "chats" => set(&mut chats, s.list(Scanner::chat)),
        "next_cursor" => set(&mut next_cursor, s.opt(Scanner::string)),
        _ => s.skip_value(),
    })?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    Some(ChatsPage {
        chats: chats?,
        next_cursor: next_cursor.flatten().map(Cow::into_owned),
    })
}

/// Bytes that end the fast scan of a string: the quote, the backslash and control characters
/// (which JSON forbids in strings).
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A position in the page text (`b` is the same text as bytes), with the count of objects and
/// arrays open around it.
struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

/// Fills a field's slot with a decoded value. A slot already filled means the field came twice,
/// which serde_json rejects: fall back. So does a value that did not decode.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

impl<'a> Scanner<'a> {
    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `c` after whitespace.
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Consumes `lit` (a literal whose first byte was peeked).
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.i.checked_add(lit.len())?;
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object: `field` is called with each key, the scanner just after the colon, and must
    /// consume the value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.enter()?;
        if self.peek()? == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.key()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: `item` is called at each element and must consume it.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.enter()?;
        if self.peek()? == b']' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Scans a string body from just after its opening quote to the first stop byte.
    fn scan(&mut self) {
        // A local slice, so the loop keeps its index in a register.
        let rest = self.b.get(self.i..).unwrap_or_default();
        self.i += rest
            .iter()
            .position(|&c| STOP[c as usize])
            .unwrap_or(rest.len());
    }

    /// A key: a string without escapes (a key with escapes could spell a known field, so it
    /// falls back).
    fn key(&mut self) -> Option<&'a str> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        self.i = start;
        self.scan();
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let key = self.text.get(start..self.i)?;
        self.i += 1;
        Some(key)
    }

    /// A string kept in the page: borrowed from the body, or unescaped into an owned one.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        self.scan();
        match *self.b.get(self.i)? {
            b'"' => {
                let s = self.text.get(start..self.i)?;
                self.i += 1;
                Some(Cow::Borrowed(s))
            }
            b'\\' => {
                let mut out = String::from(self.text.get(start..self.i)?);
                loop {
                    // At a backslash or the closing quote.
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.i += 1;
                            return Some(Cow::Owned(out));
                        }
                        b'\\' => self.unescape(&mut out)?,
                        _ => return None,
                    }
                    let run = self.i;
                    self.scan();
                    out.push_str(self.text.get(run..self.i)?);
                }
            }
            _ => None,
        }
    }

    /// One escape, at its backslash, appended to `out`.
    fn unescape(&mut self, out: &mut String) -> Option<()> {
        let c = *self.b.get(self.i + 1)?;
        self.i += 2;
        out.push(match c {
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
                    0xD800..=0xDBFF => {
                        // Only a well-formed pair; serde_json rejects the rest.
                        if self.b.get(self.i..self.i + 2)? != b"\\u" {
                            return None;
                        }
                        self.i += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        let code =
                            0x1_0000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                        char::from_u32(code)?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(u32::from(hi))?,
                }
            }
            _ => return None,
        });
        Some(())
    }

    /// Four hex digits after `\u`.
    fn hex4(&mut self) -> Option<u16> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u16;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | u16::from(n);
        }
        self.i += 4;
        Some(v)
    }

    /// A string that is not kept: checked as serde_json checks an ignored one (escapes must be
    /// valid, any four hex digits after `\u`), nothing copied.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.scan();
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let c = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match c {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// `null` → `None`, else `value` → `Some` (an `Option` field).
    fn opt<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        value(self).map(Some)
    }

    /// An array, each element decoded by `item`.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut items = Vec::new();
        self.array(|s| {
            items.push(item(s)?);
            Some(())
        })?;
        Some(items)
    }

    /// `true` or `false`.
    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    /// A number token, checked against JSON's grammar:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        self.text.get(start..self.i)
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    /// A score. A plain decimal (no sign, no exponent) of at most 15 digits is `m / 10^k` with
    /// both exact in an `f64`, so one division rounds it correctly, as serde_json does; any
    /// other number falls back, so its rounding (and `-0`) are serde_json's own.
    fn score(&mut self) -> Option<f64> {
        const POW10: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let token = self.number()?;
        let (mut m, mut digits, mut k) = (0u64, 0usize, None::<usize>);
        for c in token.bytes() {
            match c {
                b'0'..=b'9' => {
                    m = m * 10 + u64::from(c - b'0');
                    digits += 1;
                    if digits > 15 {
                        return None;
                    }
                    if let Some(k) = k.as_mut() {
                        *k += 1;
                    }
                }
                b'.' => k = Some(0),
                _ => return None,
            }
        }
        Some(m as f64 / POW10.get(k.unwrap_or(0))?)
    }

    /// Any value, checked and skipped.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|s, _| s.skip_value()),
            b'[' => self.array(Self::skip_value),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    fn chat(&mut self) -> Option<Chat<'a>> {
        let (mut id, mut display_name, mut handles, mut service) = (None, None, None, None);
        let (mut is_archived, mut is_group, mut health_score, mut health_status) =
            (None, None, None, None);
        self.object(|s, key| match key {
            "id" => set(&mut id, s.string()),
            "display_name" => set(&mut display_name, s.opt(Self::string)),
            "handles" => set(&mut handles, s.list(Self::handle)),
            "is_archived" => set(&mut is_archived, s.opt(Self::bool)),
            "is_group" => set(&mut is_group, s.bool()),
            "service" => set(&mut service, s.opt(Self::string)),
            "health_score" => set(&mut health_score, s.opt(Self::health_score)),
            "health_status" => set(&mut health_status, s.opt(Self::health_status)),
            _ => s.skip_value(),
        })?;
        Some(Chat {
            id: id?,
            display_name: display_name.flatten(),
            handles: handles.unwrap_or_default(),
            is_archived: is_archived.flatten(),
            is_group: is_group.unwrap_or_default(),
            service: service.flatten(),
            health_score: health_score.flatten(),
            health_status: health_status.flatten(),
        })
    }

    fn handle(&mut self) -> Option<Handle<'a>> {
        let (mut handle, mut service, mut is_me, mut status) = (None, None, None, None);
        self.object(|s, key| match key {
            "handle" => set(&mut handle, s.string()),
            "service" => set(&mut service, s.opt(Self::string)),
            "is_me" => set(&mut is_me, s.opt(Self::bool)),
            "status" => set(&mut status, s.opt(Self::string)),
            _ => s.skip_value(),
        })?;
        Some(Handle {
            handle: handle?,
            service: service.flatten(),
            is_me: is_me.flatten(),
            status: status.flatten(),
        })
    }

    fn health_score(&mut self) -> Option<HealthScore<'a>> {
        let (mut score, mut reason, mut updated_at) = (None, None, None);
        self.object(|s, key| match key {
            "score" => set(&mut score, s.score()),
            "reason" => set(&mut reason, s.opt(Self::string)),
            "updated_at" => set(&mut updated_at, s.opt(Self::string)),
            _ => s.skip_value(),
        })?;
        Some(HealthScore {
            score: score?,
            reason: reason.flatten(),
            updated_at: updated_at.flatten(),
        })
    }

    fn health_status(&mut self) -> Option<HealthStatus<'a>> {
        let (mut status, mut doc_url, mut updated_at) = (None, None, None);
        self.object(|s, key| match key {
            "status" => set(&mut status, s.string()),
            "doc_url" => set(&mut doc_url, s.opt(Self::string)),
            "updated_at" => set(&mut updated_at, s.opt(Self::string)),
            _ => s.skip_value(),
        })?;
        Some(HealthStatus {
            status: status?,
            doc_url: doc_url.flatten(),
            updated_at: updated_at.flatten(),
        })
    }
}
#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const FIXTURES: [&str; 3] = [
        include_str!("../../tests/fixtures/chats_page_full.json"),
        include_str!("../../tests/fixtures/chats_page_last.json"),
        include_str!("../../tests/fixtures/status_page_chats.json"),
    ];

    fn serde(text: &str) -> Result<ChatsPage<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Equal values, scores compared bit for bit (`==` would let `-0.0` pass for `0.0`).
    fn assert_same(fast: &ChatsPage<'_>, slow: &ChatsPage<'_>, text: &str) {
        assert_eq!(fast, slow, "{text}");
        for (a, b) in fast.chats.iter().zip(&slow.chats) {
            let bits = |c: &Chat<'_>| c.health_score.as_ref().map(|s| s.score.to_bits());
            assert_eq!(bits(a), bits(b), "{text}");
        }
    }

    /// Whatever the fast path returns, serde_json returns too.
    fn check(text: &str) -> bool {
        match chats_page(text) {
            Some(fast) => {
                let slow = serde(text).unwrap_or_else(|e| panic!("serde rejects ({e}): {text}"));
                assert_same(&fast, &slow, text);
                true
            }
            None => false,
        }
    }

    #[test]
    fn fixtures_take_the_fast_path_with_serdes_values() {
        for text in FIXTURES {
            assert!(check(text), "fell back: {text}");
        }
        let page = chats_page(FIXTURES[0]).expect("fast");
        assert_eq!(page.chats.len(), 4);
        assert_eq!(page.next_cursor.as_deref(), Some("b3BhcXVlOjI="));
        assert_eq!(
            page.chats[2].display_name.as_deref(),
            Some("Ann \"the \\ boss\"\nO'Neil ✓")
        );
        assert_eq!(
            page.chats[3].health_score.as_ref().map(|s| s.score),
            Some(12.5)
        );
        assert!(matches!(page.chats[0].id, Cow::Borrowed("chat-1")));
    }

    #[test]
    fn valid_pages_the_fast_path_takes() {
        for text in [
            r#"{"chats":[]}"#,
            " \t\r\n{ \"chats\" : [ ] , \"next_cursor\" : null } \n",
            r#"{"next_cursor":"c","chats":[],"extra":{"a":[1,-2.5e+3,true,false,null,"\u00e9\ud800"]}}"#,
            r#"{"chats":[{"id":"a"}],"next_cursor":""}"#,
            r#"{"chats":[{"id":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\x","display_name":"\uD83D\uDE00"}]}"#,
            r#"{"chats":[{"id":"a","handles":[{"handle":"h","is_me":null,"status":null,"service":null}]}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":0},"health_status":{"status":"X"}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":100.000},"health_status":null}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":0.1}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":123456789012345}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":0.00000000000001}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":9.99999999999999,"x":{}}}]}"#,
        ] {
            assert!(check(text), "fell back: {text}");
        }
    }

    #[test]
    fn what_falls_back_to_serde_json() {
        // Valid for serde_json, but handled by it: the fast path must step aside.
        for text in [
            r#"{"chats":[{"id":"a","health_score":{"score":-0}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":-1}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":1e2}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":1234567890123456}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":0.1234567890123456}}]}"#,
            r#"{"chats":[{"i\u0064":"a"}]}"#,
            r#"{"chats":[["a",null,[],false,false,null,null,null]]}"#,
            r#"[[{"id":"a"}],null]"#,
        ] {
            assert!(chats_page(text).is_none(), "{text}");
            assert!(serde(text).is_ok(), "{text}");
        }
        // Errors: serde_json reports them.
        for text in [
            "",
            "{",
            r#"{"chats":[]"#,
            r#"{"chats":[]} x"#,
            r#"{"chats":[],}"#,
            r#"{"chats":[1,]}"#,
            r#"{"chats":[{"id":"a"},]}"#,
            r#"{"next_cursor":null}"#,
            r#"{"chats":[],"chats":[]}"#,
            r#"{"chats":[{"id":"a","id":"b"}]}"#,
            r#"{"chats":[{"id":"a","handles":[{"handle":"h","status":"x","status":"y"}]}]}"#,
            r#"{"chats":[{"handles":[]}]}"#,
            r#"{"chats":[{"id":"a","is_group":null}]}"#,
            r#"{"chats":[{"id":"a","handles":null}]}"#,
            r#"{"chats":[{"id":"a","display_name":5}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"reason":"r"}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":"high"}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":01}}]}"#,
            r#"{"chats":[{"id":"a","health_score":{"score":1.}}]}"#,
            r#"{"chats":[{"id":"a","health_status":{}}]}"#,
            r#"{"chats":[{"id":"\ud800"}]}"#,
            r#"{"chats":[{"id":"\udc00"}]}"#,
            r#"{"chats":[{"id":"\ud800\u0041"}]}"#,
            r#"{"chats":[{"id":"\x"}]}"#,
            r#"{"chats":[{"id":"\u12G4"}]}"#,
            "{\"chats\":[{\"id\":\"tab\there\"}]}",
            r#"{"chats":[],"x":[1 2]}"#,
            r#"{"chats":[],"x":-}"#,
            r#"{"chats":[],"x":.5}"#,
            r#"{"chats":[],"x":1e}"#,
            r#"{"chats":[],"x":nul}"#,
            r#"{"chats":[],"x":"\q"}"#,
            r#"{"chats":[],"x":{"a"}}"#,
            r#"{"chats":[],"x":{1:2}}"#,
        ] {
            assert!(chats_page(text).is_none(), "{text}");
            assert!(serde(text).is_err(), "{text}");
        }
        // Every known field, twice: serde_json rejects a repeated field.
        let chat = |fields: &str| format!(r#"{{"chats":[{{"id":"a",{fields}}}]}}"#);
        let mut repeated = vec![
            r#"{"chats":[],"next_cursor":null,"next_cursor":null}"#.to_string(),
            r#"{"chats":[{"id":"a","id":"a"}]}"#.to_string(),
        ];
        for field in [
            r#""display_name":null"#,
            r#""handles":[]"#,
            r#""is_archived":true"#,
            r#""is_group":true"#,
            r#""service":null"#,
            r#""health_score":null"#,
            r#""health_status":null"#,
        ] {
            repeated.push(chat(&format!("{field},{field}")));
        }
        for inner in [
            r#""handles":[{"handle":"h","handle":"h"}]"#,
            r#""handles":[{"handle":"h","service":null,"service":null}]"#,
            r#""handles":[{"handle":"h","is_me":null,"is_me":null}]"#,
            r#""handles":[{"handle":"h","status":null,"status":null}]"#,
            r#""health_score":{"score":1,"score":1}"#,
            r#""health_score":{"score":1,"reason":null,"reason":null}"#,
            r#""health_score":{"score":1,"updated_at":null,"updated_at":null}"#,
            r#""health_status":{"status":"H","status":"H"}"#,
            r#""health_status":{"status":"H","doc_url":null,"doc_url":null}"#,
            r#""health_status":{"status":"H","updated_at":null,"updated_at":null}"#,
        ] {
            repeated.push(chat(inner));
        }
        for text in &repeated {
            assert!(chats_page(text).is_none(), "{text}");
            assert!(serde(text).is_err(), "{text}");
        }
        // Unknown fields may repeat.
        assert!(check(r#"{"chats":[{"id":"a","x":1,"x":2}],"y":0,"y":0}"#));

        // Nesting: the recursive fast path stops at MAX_DEPTH (a bounded stack, even for a
        // hostile body); serde_json skips an unknown value of any depth without recursion.
        let deep = |n: usize| format!(r#"{{"chats":[],"x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(check(&deep(MAX_DEPTH as usize - 1)));
        assert!(chats_page(&deep(MAX_DEPTH as usize)).is_none());
        assert!(chats_page(&deep(1_000_000)).is_none());
        assert!(serde(&deep(1_000_000)).is_ok());
    }

    /// A random decimal score of 1 to 17 digits, sometimes with a sign or an exponent.
    fn random_number(rng: &mut StdRng) -> String {
        let digits: String = (0..rng.random_range(1..=17))
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let digits = digits.trim_start_matches('0');
        let int = if digits.is_empty() { "0" } else { digits };
        let mut n = String::new();
        if rng.random_ratio(1, 10) {
            n.push('-');
        }
        let split = rng.random_range(0..=int.len());
        if split == 0 || split == int.len() {
            n.push_str(int);
        } else {
            n.push_str(&format!("{}.{}", &int[..split], &int[split..]));
        }
        if rng.random_ratio(1, 10) {
            n.push_str(&format!("e{}", rng.random_range(-30..30)));
        }
        n
    }

    #[test]
    fn random_scores_match_serde_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut fast = 0;
        for _ in 0..20_000 {
            let n = random_number(&mut rng);
            let text = format!(r#"{{"chats":[{{"id":"a","health_score":{{"score":{n}}}}}]}}"#);
            if check(&text) {
                fast += 1;
            }
        }
        // Most of them are plain decimals of at most 15 digits.
        assert!(fast > 10_000, "{fast}");
    }

    /// Bytes that matter to a JSON scanner, for mutations.
    const ALPHABET: &[u8] = b"{}[]:,\"\\ \t\nnulltruefalse0123456789-+.eEu\x01\xc3\xa9abcdef";

    #[test]
    fn mutated_fixtures_agree_with_serde() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..4_000 {
            let fixture = FIXTURES[rng.random_range(0..FIXTURES.len())];
            let mut bytes = fixture.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                let b = ALPHABET[rng.random_range(0..ALPHABET.len())];
                match rng.random_range(0..3) {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            // The fast path runs on text that is already UTF-8, as in models::decode_chats_page.
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            total += 1;
            if check(text) {
                fast += 1;
            }
        }
        // Many mutations land in whitespace or skipped values and keep the page valid.
        assert!(total > 3_000 && fast > total / 10, "{fast} of {total}");
    }
}
