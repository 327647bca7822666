//! A reader of the JSON the events are written in (RFC 8259), for `event::parse`: strings borrowed from
//! the record unless they hold an escape, numbers as integers or floats (correctly rounded, as
//! `str::parse` reads them), objects read key by key. It refuses what is not JSON, and `\u` escapes
//! (`event::parse` leaves records holding one to the Python path before reading them).

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A number written without a fraction or an exponent, within i64.
    Int(i64),
    Float(f64),
}

pub struct Reader<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    /// A reader of the record, when it is UTF-8.
    pub fn new(data: &'a [u8]) -> Option<Reader<'a>> {
        Some(Reader { text: std::str::from_utf8(data).ok()?, i: 0 })
    }

    /// The same record, read from byte `i` (a position a reader gave).
    pub fn at(&self, i: usize) -> Reader<'a> {
        Reader { text: self.text, i }
    }

    pub fn position(&mut self) -> usize {
        self.ws();
        self.i
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if self.bytes()[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.bytes().len()).then_some(())
    }

    /// Reads `null` if it comes next.
    pub fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.word("null")
    }

    pub fn boolean(&mut self) -> Option<bool> {
        self.peek()?;
        if self.word("true") {
            Some(true)
        } else if self.word("false") {
            Some(false)
        } else {
            None
        }
    }

    /// A string, borrowed from the record when it holds no escape.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        let end = start + memchr::memchr2(b'"', b'\\', &b[start..])?;
        if b[start..end].iter().any(|&c| c < 0x20) {
            return None;
        }
        if b[end] == b'"' {
            self.i = end + 1;
            return Some(Cow::Borrowed(&self.text[start..end]));
        }
        // Escapes (but `\u`): unescaped into a string of its own.
        let mut out = String::with_capacity(end - start + 16);
        let mut i = start;
        loop {
            let next = i + memchr::memchr2(b'"', b'\\', &b[i..])?;
            if b[i..next].iter().any(|&c| c < 0x20) {
                return None;
            }
            out.push_str(&self.text[i..next]);
            if b[next] == b'"' {
                self.i = next + 1;
                return Some(Cow::Owned(out));
            }
            out.push(match *b.get(next + 1)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                _ => return None,
            });
            i = next + 2;
        }
    }

    /// A string without an escape (names, ids, times: none of theirs is valid with one).
    pub fn raw_str(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    pub fn number(&mut self) -> Option<Number> {
        self.ws();
        let b = self.bytes();
        let start = self.i;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i > from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integral = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
            integral = false;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
            integral = false;
        }
        self.i = i;
        let token = &self.text[start..i];
        if integral {
            return token.parse::<i64>().ok().map(Number::Int);
        }
        let v: f64 = token.parse().ok()?;
        v.is_finite().then_some(Number::Float(v))
    }

    /// An array of integers.
    pub fn integers(&mut self) -> Option<Vec<i64>> {
        let mut out = Vec::new();
        self.array(|r| match r.number()? {
            Number::Int(v) => {
                out.push(v);
                Some(())
            }
            Number::Float(_) => None,
        })?;
        Some(out)
    }

    /// An array: `each` reads every item.
    pub fn array(&mut self, mut each: impl FnMut(&mut Reader<'a>) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            each(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object: `each` reads the value of every key (a key with an escape is refused).
    pub fn object(&mut self, mut each: impl FnMut(&mut Reader<'a>, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.raw_str()?;
            self.eat(b':')?;
            each(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads past any JSON value.
    pub fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|r, _| r.skip_value()),
            b'[' => self.array(|r| r.skip_value()),
            b't' | b'f' => self.boolean().map(drop),
            b'n' => self.null().then_some(()),
            _ => self.number().map(drop),
        }
    }
}
