//! Splits an RFC 1035 §5.1 master file into entries: one logical line each (parentheses join
//! physical lines), comments dropped, every token with its line and column.

use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tok<'a> {
    /// The token's text; for a quoted string, what stands between the quotes, escapes untouched.
    pub text: &'a str,
    pub quoted: bool,
    pub line: u32,
    pub col: u32,
}

#[derive(Debug)]
pub struct Entry<'a> {
    /// The entry's first physical line started with white space: the owner is the previous one.
    pub blank_owner: bool,
    pub line: u32,
    pub tokens: Vec<Tok<'a>>,
}

pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0, line: 1, line_start: 0 }
    }

    fn col(&self, at: usize) -> u32 {
        (at - self.line_start + 1) as u32
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError { line: self.line, col: self.col(at), msg: msg.into() }
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.pos;
    }

    /// The next entry with at least one token, or None at the end of input.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let bytes = self.src.as_bytes();
        loop {
            if self.pos >= bytes.len() {
                return Ok(None);
            }
            let blank_owner = matches!(bytes[self.pos], b' ' | b'\t');
            let mut entry = Entry { blank_owner, line: self.line, tokens: Vec::new() };
            let mut open_paren: Option<(u32, u32)> = None;
            while self.pos < bytes.len() {
                let c = bytes[self.pos];
                match c {
                    b'\n' => {
                        self.newline();
                        if open_paren.is_none() {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b';' => {
                        while self.pos < bytes.len() && bytes[self.pos] != b'\n' {
                            self.pos += 1;
                        }
                    }
                    b'(' => {
                        if open_paren.is_some() {
                            return Err(self.err(self.pos, "nested parentheses"));
                        }
                        open_paren = Some((self.line, self.col(self.pos)));
                        self.pos += 1;
                    }
                    b')' => {
                        if open_paren.take().is_none() {
                            return Err(self.err(self.pos, "')' without '('"));
                        }
                        self.pos += 1;
                    }
                    b'"' => {
                        let (line, col) = (self.line, self.col(self.pos));
                        let start = self.pos + 1;
                        let mut i = start;
                        loop {
                            match bytes.get(i) {
                                None | Some(b'\n') => {
                                    return Err(ParseError { line, col, msg: "unterminated quoted string".into() });
                                }
                                Some(b'\\') => i += 2,
                                Some(b'"') => break,
                                Some(_) => i += 1,
                            }
                        }
                        entry.tokens.push(Tok { text: &self.src[start..i], quoted: true, line, col });
                        self.pos = i + 1;
                    }
                    _ => {
                        let start = self.pos;
                        let mut i = start;
                        while let Some(&b) = bytes.get(i) {
                            match b {
                                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                                b'\\' => i += if bytes.get(i + 1).is_some_and(|&n| n != b'\n') { 2 } else { 1 },
                                _ => i += 1,
                            }
                        }
                        let i = i.min(bytes.len());
                        entry.tokens.push(Tok {
                            text: &self.src[start..i],
                            quoted: false,
                            line: self.line,
                            col: self.col(start),
                        });
                        self.pos = i;
                    }
                }
            }
            if let Some((line, col)) = open_paren {
                return Err(ParseError { line, col, msg: "'(' is never closed".into() });
            }
            if !entry.tokens.is_empty() {
                return Ok(Some(entry));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Positioned = Vec<(String, u32, u32)>;

    fn entries(src: &str) -> Vec<(bool, Positioned)> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        while let Some(e) = lx.next_entry().unwrap() {
            out.push((e.blank_owner, e.tokens.iter().map(|t| (t.text.to_string(), t.line, t.col)).collect()));
        }
        out
    }

    #[test]
    fn tokens_positions_comments_parens() {
        let src = "@ IN SOA ns hm ( 1 ; serial\n  2 3 4 5 )\n\n  A 192.0.2.1 ; c\nwww TXT \"a b\" c\\ d\n";
        let e = entries(src);
        assert_eq!(e.len(), 3);
        assert!(!e[0].0);
        assert_eq!(e[0].1.len(), 10);
        assert_eq!(e[0].1[5], ("1".into(), 1, 18));
        assert_eq!(e[0].1[6], ("2".into(), 2, 3));
        assert!(e[1].0);
        assert_eq!(e[1].1[0], ("A".into(), 4, 3));
        assert_eq!(e[2].1[2], ("a b".into(), 5, 9));
        assert_eq!(e[2].1[3].0, "c\\ d");
    }

    #[test]
    fn errors_have_positions() {
        let mut lx = Lexer::new("a TXT \"open\n");
        let e = lx.next_entry().unwrap_err();
        assert_eq!((e.line, e.col), (1, 7));
        let mut lx = Lexer::new("a A (\n 1.2.3.4\n");
        let e = lx.next_entry().unwrap_err();
        assert_eq!((e.line, e.col, e.msg.as_str()), (1, 5, "'(' is never closed"));
        let mut lx = Lexer::new("\n a )");
        assert_eq!(lx.next_entry().unwrap_err().line, 2);
    }

    #[test]
    fn comment_only_and_crlf() {
        let e = entries("; only a comment\r\n\r\nx A 1.2.3.4\r\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].1[2].0, "1.2.3.4");
    }
}
