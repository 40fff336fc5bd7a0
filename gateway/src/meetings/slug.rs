//! Meeting slugs: 13 characters from an alphabet without look-alikes (no 0/o, 1/l/i), shown
//! as `xxxx-xxxx-xxxxx`; the hyphens are part of the slug (see `docs/realtime.md`).

use rand::Rng;

/// 31 symbols people can read aloud and type without confusing them.
pub const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Symbols in a slug: 13 × log2(31) ≈ 64.4, i.e. about 65 bits, unguessable.
pub const SYMBOLS: usize = 13;
/// Length with the two hyphens.
pub const LEN: usize = SYMBOLS + 2;

/// A fresh random slug.
pub fn new_slug() -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(LEN);
    for i in 0..SYMBOLS {
        if i == 4 || i == 8 {
            out.push('-');
        }
        let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
        out.push(char::from(c));
    }
    out
}

/// Whether `s` has the slug shape. Checked before any store access, so a crafted path never
/// becomes a store key.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == LEN
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 9 {
                *c == b'-'
            } else {
                ALPHABET.contains(c)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_slugs_have_the_shape_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = new_slug();
            assert!(is_slug(&s), "{s}");
            assert_eq!(s.len(), 15);
            assert_eq!(&s[4..5], "-");
            assert_eq!(&s[9..10], "-");
            assert!(seen.insert(s));
        }
        assert_eq!(ALPHABET.len(), 31);
        // 31^13 > 2^64: about 65 bits.
        assert!((31f64).powi(13).log2() > 64.0);
    }

    #[test]
    fn refuses_what_is_not_a_slug() {
        assert!(is_slug("abcd-efgh-jkmnp"));
        for bad in [
            "",
            "abcd-efgh-jkmn",
            "abcd-efgh-jkmnpq",
            "abcdefghjkmnpqr",
            "abcd_efgh_jkmnp",
            "ABCD-EFGH-JKMNP",
            "abc0-efgh-jkmnp",
            "abcl-efgh-jkmnp",
            "abco-efgh-jkmnp",
            "abci-efgh-jkmnp",
            "../a-efgh-jkmnp",
            "abcd-efgh-jkmn\u{e9}",
        ] {
            assert!(!is_slug(bad), "{bad:?}");
        }
    }
}
