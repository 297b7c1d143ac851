//! The token check: `Authorization: Bearer TOKEN`, or basic auth with any user
//! and TOKEN as password, compared in time that does not depend on what was sent.

use super::Request;

/// Whether `presented` equals `secret`. Every byte of `secret` is visited
/// whatever `presented` is (a shorter, longer or wrong value alike), so the
/// time depends on the secret's length only: nothing about the token leaks
/// through how fast a wrong guess is refused, not even its length.
pub fn same_secret(presented: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        // A missing byte compares as 0 against the secret's; the length flag above already differs.
        diff |= presented.get(i).copied().unwrap_or(0) ^ s;
    }
    std::hint::black_box(diff) == 0
}

/// Whether `req` carries `token`.
pub fn authorised(req: &Request, token: &str) -> bool {
    let Some(auth) = req.header("authorization") else { return false };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return same_secret(value.trim().as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        if let Some(decoded) = crate::dashboard::base64::decode(value.trim()) {
            if let Some(pos) = decoded.iter().position(|b| *b == b':') {
                return same_secret(&decoded[pos + 1..], token.as_bytes());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn token_by_bearer_or_basic_auth() {
        let with = |v: &str| Request { headers: vec![("authorization".into(), v.into())], ..Request::default() };
        let token = "s3cret-token";
        assert!(authorised(&with("Bearer s3cret-token"), token));
        assert!(authorised(&with("bearer s3cret-token"), token));
        assert!(!authorised(&with("Bearer s3cret-tokeN"), token));
        let basic = |u: &str, p: &str| format!("Basic {}", crate::dashboard::base64::encode(format!("{u}:{p}").as_bytes()));
        assert!(authorised(&with(&basic("anyone", token)), token));
        assert!(authorised(&with(&basic("", token)), token));
        assert!(!authorised(&with(&basic(token, "x")), token));
        assert!(!authorised(&with("Basic !!!"), token));
        assert!(!authorised(&Request::default(), token));
    }

    #[test]
    fn compares_whole_values() {
        let s = b"s3cret-token";
        assert!(same_secret(s, s));
        for wrong in [&b""[..], b"s", b"s3cret-toke", b"s3cret-token\0", b"s3cret-tokenX", b"S3cret-token", b"\0\0\0\0\0\0\0\0\0\0\0\0"] {
            assert!(!same_secret(wrong, s), "{wrong:?}");
        }
        assert!(same_secret(b"", b""));
    }

    /// The fastest of many runs of `f` (the minimum is what noise cannot lower).
    fn fastest(f: impl Fn() -> bool) -> Duration {
        (0..400)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..20 {
                    std::hint::black_box(f());
                }
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    /// Issue 24 item 17: a guess of the wrong length was refused at once, a
    /// guess of the right length only after comparing every byte, which told
    /// the token's length. Now both take the time of the secret's length.
    #[test]
    fn refusal_time_does_not_depend_on_the_guess_length() {
        let secret = vec![b'k'; 4096];
        let mut right_length = secret.clone();
        right_length[4095] = b'x';
        let short = fastest(|| same_secret(std::hint::black_box(b"k"), std::hint::black_box(&secret)));
        let full = fastest(|| same_secret(std::hint::black_box(&right_length), std::hint::black_box(&secret)));
        // An early return makes `short` hundreds of times faster; the same work keeps them within noise.
        assert!(short.as_secs_f64() > full.as_secs_f64() * 0.3, "a 1-byte guess took {short:?}, a full-length one {full:?}");
    }
}
