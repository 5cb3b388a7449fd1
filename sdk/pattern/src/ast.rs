//! The byte-level syntax tree both pattern dialects parse into. Options that
//! change what a piece matches (case-insensitivity, dot-all, multi-line,
//! ungreedy) are resolved by the parsers, so a tree means the same thing
//! whatever flags the rule had.

/// A set of byte values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    /// The empty set.
    pub fn new() -> ByteSet {
        ByteSet([0; 4])
    }
    /// The set of one byte.
    pub fn byte(b: u8) -> ByteSet {
        let mut s = ByteSet::new();
        s.insert(b);
        s
    }
    /// Every byte.
    pub fn all() -> ByteSet {
        ByteSet([u64::MAX; 4])
    }
    /// Add one byte.
    pub fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }
    /// Add `lo..=hi`.
    pub fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }
    /// Add every byte of `other`.
    pub fn union(&mut self, other: &ByteSet) {
        for i in 0..4 {
            self.0[i] |= other.0[i];
        }
    }
    /// Remove one byte.
    pub fn remove(&mut self, b: u8) {
        self.0[(b >> 6) as usize] &= !(1 << (b & 63));
    }
    /// Whether `b` is in the set.
    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }
    /// The complement.
    pub fn negated(&self) -> ByteSet {
        ByteSet([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }
    /// Add the other ASCII case of every ASCII letter in the set.
    pub fn fold_ascii_case(&mut self) {
        for b in b'A'..=b'Z' {
            if self.contains(b) || self.contains(b + 32) {
                self.insert(b);
                self.insert(b + 32);
            }
        }
    }
    /// The number of bytes in the set.
    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// Whether the set has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The set as inclusive ranges, in order.
    pub fn ranges(&self) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        let mut start: Option<u8> = None;
        for b in 0..=255u8 {
            match (self.contains(b), start) {
                (true, None) => start = Some(b),
                (false, Some(s)) => {
                    out.push((s, b - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, 255));
        }
        out
    }
}

/// ASCII word characters (`[0-9A-Za-z_]`), as C-locale `\w` means.
pub fn word_bytes() -> ByteSet {
    let mut s = ByteSet::new();
    s.insert_range(b'0', b'9');
    s.insert_range(b'A', b'Z');
    s.insert_range(b'a', b'z');
    s.insert(b'_');
    s
}

/// The bytes of a POSIX class `[:name:]` in the C locale (PCRE2 also knows
/// `word` and `ascii`).
pub fn posix_class(name: &[u8]) -> Option<ByteSet> {
    let mut s = ByteSet::new();
    let pred: fn(u8) -> bool = match name {
        b"alpha" => |b| b.is_ascii_alphabetic(),
        b"upper" => |b| b.is_ascii_uppercase(),
        b"lower" => |b| b.is_ascii_lowercase(),
        b"digit" => |b| b.is_ascii_digit(),
        b"xdigit" => |b| b.is_ascii_hexdigit(),
        b"alnum" => |b| b.is_ascii_alphanumeric(),
        b"punct" => |b| b.is_ascii_punctuation(),
        b"space" => |b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'),
        b"blank" => |b| b == b' ' || b == b'\t',
        b"cntrl" => |b| b < 0x20 || b == 0x7f,
        b"graph" => |b| b.is_ascii_graphic(),
        b"print" => |b| b.is_ascii_graphic() || b == b' ',
        b"word" => |b| b.is_ascii_alphanumeric() || b == b'_',
        b"ascii" => |b| b < 0x80,
        _ => return None,
    };
    for b in 0..=255u8 {
        if pred(b) {
            s.insert(b);
        }
    }
    Some(s)
}

/// C-locale white space (`[:space:]`, `\s`).
pub fn space_bytes() -> ByteSet {
    let mut s = ByteSet::new();
    for b in [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c] {
        s.insert(b);
    }
    s
}

/// A zero-width test at a position.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Assertion {
    /// Start of the key.
    TextStart,
    /// End of the key.
    TextEnd,
    /// End of the key, or before a newline that ends it (PCRE `$`, `\Z`).
    TextEndOrFinalNewline,
    /// Start of the key or just after a newline.
    LineStart,
    /// End of the key or just before a newline.
    LineEnd,
    /// Between a word and a non-word byte (either order).
    WordBoundary,
    /// Not at a word boundary.
    NotWordBoundary,
    /// A word starts here.
    WordStart,
    /// A word ends here.
    WordEnd,
}

/// How a repetition prefers to match.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Greed {
    /// As many as possible, giving back on failure.
    Greedy,
    /// As few as possible.
    Lazy,
    /// As many as possible, never giving back.
    Possessive,
}

/// A node of a pattern.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Node {
    /// Matches the empty string.
    Empty,
    /// One byte out of a set (a literal byte is a set of one).
    Bytes(ByteSet),
    /// Each part in turn.
    Concat(Vec<Node>),
    /// The first alternative that leads to a match.
    Alternation(Vec<Node>),
    /// `node` repeated `min..=max` times (`max` None = unbounded).
    Repeat {
        /// What is repeated.
        node: Box<Node>,
        /// Fewest repetitions.
        min: u32,
        /// Most repetitions.
        max: Option<u32>,
        /// Greedy, lazy or possessive.
        greed: Greed,
    },
    /// A group; `capture` is its 1-based number if it captures.
    Group {
        /// The group's contents.
        node: Box<Node>,
        /// Capture number.
        capture: Option<u32>,
    },
    /// A zero-width assertion.
    Assert(Assertion),
    /// The text a capture group matched.
    Backref {
        /// The group's number.
        group: u32,
        /// Compare ignoring ASCII case.
        caseless: bool,
    },
    /// A lookahead or lookbehind.
    Look {
        /// The assertion's pattern.
        node: Box<Node>,
        /// Ahead (true) or behind (false).
        ahead: bool,
        /// `(?!` / `(?<!`.
        negated: bool,
    },
    /// An atomic group `(?>…)`.
    Atomic(Box<Node>),
}

impl Node {
    /// Whether matching needs a backtracking engine (backreferences,
    /// lookaround, atomic groups or possessive repetition).
    pub fn needs_backtracking(&self) -> bool {
        match self {
            Node::Backref { .. } | Node::Look { .. } | Node::Atomic(_) => true,
            Node::Repeat { node, greed, .. } => {
                *greed == Greed::Possessive || node.needs_backtracking()
            }
            Node::Group { node, .. } => node.needs_backtracking(),
            Node::Concat(v) | Node::Alternation(v) => v.iter().any(Node::needs_backtracking),
            _ => false,
        }
    }

    /// Whether the node can match the empty string.
    pub fn nullable(&self) -> bool {
        match self {
            Node::Bytes(_) => false,
            Node::Concat(v) => v.iter().all(Node::nullable),
            Node::Alternation(v) => v.iter().any(Node::nullable),
            Node::Repeat { node, min, .. } => *min == 0 || node.nullable(),
            Node::Group { node, .. } | Node::Atomic(node) => node.nullable(),
            Node::Empty | Node::Assert(_) | Node::Backref { .. } | Node::Look { .. } => true,
        }
    }

    /// Whether the node has a capture group.
    pub fn has_capture(&self) -> bool {
        match self {
            Node::Group { capture, node } => capture.is_some() || node.has_capture(),
            Node::Repeat { node, .. } | Node::Look { node, .. } | Node::Atomic(node) => {
                node.has_capture()
            }
            Node::Concat(v) | Node::Alternation(v) => v.iter().any(Node::has_capture),
            _ => false,
        }
    }

    /// Whether the node repeats a part that can match the empty string and
    /// holds a capture group. Perl and PCRE2 record a last, empty
    /// repetition in such a group; Rust's automata skip it, so these
    /// patterns need the backtracking engine to give PCRE2's groups.
    pub fn repeats_empty_capture(&self) -> bool {
        match self {
            Node::Repeat { node, max, .. } => {
                (*max != Some(1) && node.nullable() && node.has_capture())
                    || node.repeats_empty_capture()
            }
            Node::Group { node, .. } | Node::Look { node, .. } | Node::Atomic(node) => {
                node.repeats_empty_capture()
            }
            Node::Concat(v) | Node::Alternation(v) => v.iter().any(Node::repeats_empty_capture),
            _ => false,
        }
    }

    /// Whether the pattern contains `assertion`.
    pub fn has_assertion(&self, assertion: Assertion) -> bool {
        match self {
            Node::Assert(a) => *a == assertion,
            Node::Repeat { node, .. }
            | Node::Group { node, .. }
            | Node::Look { node, .. }
            | Node::Atomic(node) => node.has_assertion(assertion),
            Node::Concat(v) | Node::Alternation(v) => v.iter().any(|n| n.has_assertion(assertion)),
            _ => false,
        }
    }
}

/// A parsed pattern.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pattern {
    /// The tree.
    pub node: Node,
    /// How many capture groups it has.
    pub captures: u32,
}
