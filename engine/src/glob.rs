//! Redis's glob-style pattern matching (`stringmatchlen` in util.c), used by
//! KEYS, SCAN MATCH and CONFIG GET: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.

/// True if `s` matches `pattern`. `nocase` folds ASCII case.
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

// Redis bounds recursion on `*` (nesting > 1000 gives no match) so a
// pathological pattern cannot blow the stack; `skip_longer` short-cuts the
// exponential case exactly as Redis does.
fn match_impl(
    mut p: &[u8],
    mut s: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > 1000 {
        return false;
    }
    let fold = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == s[0] {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let c = fold(s[0]);
                        if fold(start) <= c && c <= fold(end) {
                            matched = true;
                        }
                        p = &p[2..];
                    } else if fold(p[0]) == fold(s[0]) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                // An unterminated class ends with the pattern (Redis backs up
                // one char, then the pattern is finished).
                let unterminated = p.is_empty();
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if unterminated {
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if fold(p[0]) != fold(s[0]) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if fold(c) != fold(s[0]) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_cases() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"h\\*llo", b"h*llo", false));
        assert!(!matches(b"a*", b"", false));
        // As in Redis, the loop never runs for an empty subject: KEYS and
        // SCAN special-case "*" instead.
        assert!(!matches(b"*", b"", false));
        assert!(matches(b"HELLO", b"hello", true));
        // Unterminated classes, as Redis treats them.
        assert!(matches(b"k[1-", b"k1", false));
        assert!(matches(b"[^", b"a", false));
        assert!(matches(b"k[1-]", b"k3", false));
        assert!(!matches(b"k[1-", b"k1x", false));
        // Pathological pattern finishes quickly.
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!matches(p, &[b'a'; 64], false));
    }
}
