//! `allowedPattern`: a small backtracking matcher for the regular expressions SSM documents use.
//!
//! The real service checks a value against the whole pattern (Java `matches`), so a value is
//! allowed when the pattern matches all of it. The syntax covered is what document authors
//! write: literals, `.`, escapes (`\d \w \s` and their negations, escaped punctuation), classes
//! with ranges and negation, groups (`(…)`, `(?:…)`), alternation, the quantifiers
//! `* + ? {n} {n,} {n,m}` (lazy forms match like greedy ones for a whole-value match), and the
//! anchors `^ $`. A pattern outside that (look-around, back-references) does not compile, and
//! the caller then accepts every value rather than refuse a valid request.
//!
//! A dependency-free matcher keeps the build lean; values are short (request parameters), and a
//! step budget bounds pathological patterns (once spent, the value is accepted).

/// A compiled pattern.
#[derive(Debug)]
pub(crate) struct Pattern {
    root: Alt,
}

#[derive(Debug)]
struct Alt(Vec<Vec<Piece>>);

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

#[derive(Debug)]
enum Atom {
    Char(char),
    Any,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
    Start,
    End,
    Group(Alt),
}

#[derive(Debug)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

/// Matching steps before a value is given the benefit of the doubt.
const STEP_BUDGET: usize = 200_000;

impl Pattern {
    /// Compiles `pattern`, or `None` if it uses syntax this matcher does not cover.
    pub(crate) fn compile(pattern: &str) -> Option<Pattern> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut parser = Parser { chars, pos: 0 };
        let root = parser.alt()?;
        (parser.pos == parser.chars.len()).then_some(Pattern { root })
    }

    /// Whether the pattern matches all of `value` (or the step budget ran out).
    pub(crate) fn matches_all(&self, value: &str) -> bool {
        let input: Vec<char> = value.chars().collect();
        let mut matcher = Matcher {
            input: &input,
            steps: 0,
        };
        let len = input.len();
        matcher.alt(&self.root, 0, &mut |p| p == len) || matcher.steps > STEP_BUDGET
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn alt(&mut self) -> Option<Alt> {
        let mut branches = vec![self.seq()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.seq()?);
        }
        Some(Alt(branches))
    }

    fn seq(&mut self) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let (min, max) = self.quantifier()?;
            pieces.push(Piece { atom, min, max });
        }
        Some(pieces)
    }

    fn atom(&mut self) -> Option<Atom> {
        Some(match self.next()? {
            '.' => Atom::Any,
            '^' => Atom::Start,
            '$' => Atom::End,
            '(' => {
                if self.peek() == Some('?') {
                    // Only the non-capturing group; look-around and flags are not covered.
                    self.pos += 1;
                    if self.next()? != ':' {
                        return None;
                    }
                }
                let inner = self.alt()?;
                if self.next()? != ')' {
                    return None;
                }
                Atom::Group(inner)
            }
            '[' => self.class()?,
            '\\' => match self.escape()? {
                Escaped::Char(c) => Atom::Char(c),
                Escaped::Item(item) => Atom::Class {
                    negated: false,
                    items: vec![item],
                },
            },
            '*' | '+' | '?' | '{' | ')' => return None,
            c => Atom::Char(c),
        })
    }

    fn escape(&mut self) -> Option<Escaped> {
        let c = self.next()?;
        Some(match c {
            'd' | 'D' => Escaped::Item(ClassItem::Digit(c == 'D')),
            'w' | 'W' => Escaped::Item(ClassItem::Word(c == 'W')),
            's' | 'S' => Escaped::Item(ClassItem::Space(c == 'S')),
            'n' => Escaped::Char('\n'),
            't' => Escaped::Char('\t'),
            'r' => Escaped::Char('\r'),
            c if c.is_ascii_alphanumeric() => return None,
            c => Escaped::Char(c),
        })
    }

    fn class(&mut self) -> Option<Atom> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self.next()?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let low = match c {
                '\\' => match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Item(item) => {
                        items.push(item);
                        continue;
                    }
                },
                '[' => return None,
                c => c,
            };
            let is_range =
                self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']');
            if is_range {
                self.pos += 1;
                let high = match self.next()? {
                    '\\' => match self.escape()? {
                        Escaped::Char(c) => c,
                        Escaped::Item(_) => return None,
                    },
                    c => c,
                };
                if high < low {
                    return None;
                }
                items.push(ClassItem::Range(low, high));
            } else {
                items.push(ClassItem::Range(low, low));
            }
        }
        Some(Atom::Class { negated, items })
    }

    fn quantifier(&mut self) -> Option<(usize, usize)> {
        let bounds = match self.peek() {
            Some('*') => (0, usize::MAX),
            Some('+') => (1, usize::MAX),
            Some('?') => (0, 1),
            Some('{') => {
                let start = self.pos;
                self.pos += 1;
                let min = self.number();
                let bounds = match (min, self.next()) {
                    (Some(n), Some('}')) => (n, n),
                    (Some(n), Some(',')) => match (self.number(), self.next()) {
                        (Some(m), Some('}')) if m >= n => (n, m),
                        (None, Some('}')) => (n, usize::MAX),
                        _ => return None,
                    },
                    _ => {
                        // Not a quantifier: Java reads a lone `{` as an error, so do we.
                        self.pos = start;
                        return None;
                    }
                };
                self.pos -= 1;
                bounds
            }
            _ => return Some((1, 1)),
        };
        self.pos += 1;
        // A lazy or possessive suffix changes nothing for a whole-value match.
        if matches!(self.peek(), Some('?' | '+')) {
            self.pos += 1;
        }
        Some(bounds)
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits.parse().ok()
    }
}

enum Escaped {
    Char(char),
    Item(ClassItem),
}

struct Matcher<'a> {
    input: &'a [char],
    steps: usize,
}

impl Matcher<'_> {
    fn alt(&mut self, alt: &Alt, pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        alt.0.iter().any(|seq| self.seq(seq, pos, k))
    }

    fn seq(&mut self, seq: &[Piece], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match seq.split_first() {
            None => k(pos),
            Some((piece, rest)) => self.repeat(piece, 0, rest, pos, k),
        }
    }

    /// Greedy repetition of `piece`, `count` times matched so far, then `rest`, then `k`.
    fn repeat(
        &mut self,
        piece: &Piece,
        count: usize,
        rest: &[Piece],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        self.steps += 1;
        if self.steps > STEP_BUDGET {
            return false;
        }
        if count < piece.max && self.atom_then_repeat(piece, count, rest, pos, k) {
            return true;
        }
        count >= piece.min && self.seq(rest, pos, k)
    }

    fn atom_then_repeat(
        &mut self,
        piece: &Piece,
        count: usize,
        rest: &[Piece],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        match &piece.atom {
            Atom::Group(alt) => {
                // Collect where the group can end, then continue from each, longest first.
                let mut ends = Vec::new();
                self.alt(alt, pos, &mut |p| {
                    if !ends.contains(&p) {
                        ends.push(p);
                    }
                    false
                });
                ends.sort_unstable_by(|a, b| b.cmp(a));
                ends.into_iter().any(|p| {
                    (p != pos || count < piece.min) && self.repeat(piece, count + 1, rest, p, k)
                })
            }
            atom => match self.single(atom, pos) {
                Some(p) if p != pos || count < piece.min => {
                    self.repeat(piece, count + 1, rest, p, k)
                }
                _ => false,
            },
        }
    }

    /// Where a non-group atom ends if it matches at `pos`.
    fn single(&self, atom: &Atom, pos: usize) -> Option<usize> {
        let c = self.input.get(pos).copied();
        let ok = match atom {
            Atom::Start => return (pos == 0).then_some(pos),
            Atom::End => return (pos == self.input.len()).then_some(pos),
            Atom::Char(want) => c == Some(*want),
            Atom::Any => c.is_some_and(|c| c != '\n'),
            Atom::Class { negated, items } => {
                c.is_some_and(|c| items.iter().any(|item| item.contains(c)) != *negated)
            }
            Atom::Group(_) => false,
        };
        ok.then_some(pos + 1)
    }
}

impl ClassItem {
    fn contains(&self, c: char) -> bool {
        match *self {
            ClassItem::Range(low, high) => (low..=high).contains(&c),
            ClassItem::Digit(negated) => c.is_ascii_digit() != negated,
            ClassItem::Word(negated) => (c.is_ascii_alphanumeric() || c == '_') != negated,
            ClassItem::Space(negated) => c.is_whitespace() != negated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pattern: &str, value: &str) -> bool {
        Pattern::compile(pattern)
            .unwrap_or_else(|| panic!("{pattern} should compile"))
            .matches_all(value)
    }

    #[test]
    fn execution_timeout_pattern_of_aws_run_shell_script() {
        let p = "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)";
        for good in ["1", "3600", "99999", "172800", "100000"] {
            assert!(ok(p, good), "{good}");
        }
        for bad in ["0", "", "172801", "abc", "36 00", "1728000"] {
            assert!(!ok(p, bad), "{bad}");
        }
    }

    #[test]
    fn port_pattern_with_anchors() {
        let p = "^([1-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";
        assert!(ok(p, "22") && ok(p, "65535") && ok(p, "1"));
        assert!(!ok(p, "0") && !ok(p, "65536") && !ok(p, "80a"));
    }

    #[test]
    fn classes_escapes_and_quantifiers() {
        assert!(ok(r"^[a-zA-Z0-9_\-.]{3,128}$", "My-doc.v1"));
        assert!(!ok(r"^[a-zA-Z0-9_\-.]{3,128}$", "no spaces"));
        assert!(ok(r"^[^']+$", "db.example.com") && !ok(r"^[^']+$", "a'b"));
        assert!(ok(r"\d+(\.\d+)*", "1.2.3") && !ok(r"\d+(\.\d+)*", "1..2"));
        assert!(ok("a*", "") && ok("(ab)*c", "ababc") && !ok("(ab)+c", "c"));
        assert!(ok(r"\w+@\w+\.com", "me@example.com"));
        assert!(ok("(?:yes|no)?", "") && ok("(?:yes|no)?", "no"));
        assert!(ok("(a|ab)(c|bcd)", "abcd"));
    }

    #[test]
    fn unsupported_syntax_does_not_compile() {
        for p in ["(?=a)", r"(a)\1", "a{2", "[a", "(a", "*a"] {
            assert!(Pattern::compile(p).is_none(), "{p}");
        }
    }
}
