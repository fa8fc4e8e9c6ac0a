//! Redis' glob-style patterns (KEYS, SCAN MATCH): `*` any run of bytes,
//! `?` one byte, `[abc]`, `[^abc]`, `[a-z]` a class, `\x` the byte `x`.
//!
//! Matched with one backtracking point (the last `*`), so a pattern of
//! many stars costs O(pattern × key), never exponential time: Redis'
//! recursive matcher needed a nesting limit for that.

/// Whether `key` matches `pattern`.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last star: (pattern after it, key position).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, k));
            continue;
        }
        if let Some(next) = match_one(pattern, p, key[k]) {
            p = next;
            k += 1;
            continue;
        }
        match star {
            Some((after, from)) => {
                p = after;
                k = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// If the pattern element at `p` (not a star) matches `byte`, the index
/// after that element.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        b'[' => match_class(pattern, p + 1, byte),
        c => (c == byte).then_some(p + 1),
    }
}

/// A class from just after its `[`: whether `byte` is in it, and the index
/// after its `]` (an unclosed class ends with the pattern, as in Redis).
fn match_class(pattern: &[u8], mut p: usize, byte: u8) -> Option<usize> {
    let negated = pattern.get(p) == Some(&b'^');
    if negated {
        p += 1;
    }
    let mut found = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            found |= pattern[p + 1] == byte;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (low, high) = (pattern[p].min(pattern[p + 2]), pattern[p].max(pattern[p + 2]));
            found |= (low..=high).contains(&byte);
            p += 3;
        } else {
            found |= pattern[p] == byte;
            p += 1;
        }
    }
    let after = (p + 1).min(pattern.len());
    (found != negated).then_some(after)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn patterns_match_as_in_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hllo", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("key:*", "key:1", true),
            ("key:*", "kex:1", false),
            ("*:1", "key:1", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxx", false),
            ("a", "ab", false),
            ("ab", "a", false),
            ("", "", true),
            ("", "a", false),
            ("[abc", "b", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(glob_match(pattern.as_bytes(), key.as_bytes()), *expected, "{pattern} ~ {key}");
        }
    }

    /// A pattern that makes a naive recursive matcher try every split of
    /// the key (exponential time) is answered, both ways.
    #[test]
    fn many_stars_stay_polynomial() {
        let pattern = "*a".repeat(30) + "b";
        let key = "a".repeat(3000);
        assert!(!glob_match(pattern.as_bytes(), key.as_bytes()));
        assert!(glob_match(pattern.as_bytes(), (key + "b").as_bytes()));
    }
}
