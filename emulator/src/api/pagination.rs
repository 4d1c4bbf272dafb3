//! Opaque `NextToken`s.
//!
//! A token carries the key of the last item returned and a fingerprint of the query it belongs
//! to (operation, account, region and every filter). Resuming after a key instead of at an
//! offset keeps pages stable while nodes come and go between calls. The fingerprint makes a
//! token from a different query (or made up) an `InvalidNextToken`, as the real service treats
//! tokens it did not issue for that request.

use sha2::{Digest, Sha256};

use super::error::ApiError;

const VERSION: &str = "v1";

/// The fingerprint of a query: the first 8 bytes of SHA-256 over its canonical description, in
/// hex.
pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token that resumes the query `fingerprint` after the item keyed `last_key`.
pub(crate) fn encode(fingerprint: &str, last_key: &str) -> String {
    base64url_encode(format!("{VERSION}|{fingerprint}|{last_key}").as_bytes())
}

/// The key to resume after, if `token` was issued for the query `fingerprint`.
pub(crate) fn decode(token: &str, fingerprint: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::InvalidNextToken("The specified token is not valid.".to_owned());
    let bytes = base64url_decode(token).ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(fp), Some(key)) if fp == fingerprint => Ok(key.to_owned()),
        _ => Err(invalid()),
    }
}

/// One page of `items` (sorted by key, as `BTreeMap` values are), starting after `after`, with
/// the `NextToken` for the rest if any remain.
pub(crate) fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    size: usize,
    fingerprint: &str,
) -> (Vec<T>, Option<String>) {
    match after {
        Some(after) => page_from(
            items.into_iter().filter(|i| key(i) > after),
            &key,
            size,
            fingerprint,
        ),
        None => page_from(items, &key, size, fingerprint),
    }
}

/// One page of `items`, which are sorted by key and already start after the key a token
/// resumes after, with the `NextToken` for the rest if any remain. Takes at most one item
/// more than the page, so a lazy iterator (over references) is never walked to its end.
pub(crate) fn page_from<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> &str,
    size: usize,
    fingerprint: &str,
) -> (Vec<T>, Option<String>) {
    let mut rest: Vec<T> = items.into_iter().take(size.saturating_add(1)).collect();
    if rest.len() <= size {
        return (rest, None);
    }
    rest.truncate(size);
    let token = rest.last().map(|last| encode(fingerprint, key(last)));
    (rest, token)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        if chunk.len() < 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&bytes)), Some(bytes));
        }
        assert_eq!(base64url_encode(b"v1"), "djE");
        assert_eq!(base64url_decode("a"), None);
        assert_eq!(base64url_decode("a+b="), None);
    }

    #[test]
    fn token_is_bound_to_its_query() {
        let fp = fingerprint(&["DescribeInstanceInformation", "us-east-1"]);
        let other = fingerprint(&["DescribeInstanceInformation", "eu-west-1"]);
        let token = encode(&fp, "i-01234567");
        assert_eq!(decode(&token, &fp), Ok("i-01234567".to_owned()));
        assert!(matches!(
            decode(&token, &other),
            Err(ApiError::InvalidNextToken(_))
        ));
        assert!(matches!(
            decode("garbage!", &fp),
            Err(ApiError::InvalidNextToken(_))
        ));
    }

    #[test]
    fn pages_resume_after_the_last_key() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let (first, token) = page(items.clone(), |s| s, None, 5, "fp");
        assert_eq!(first.len(), 5);
        let after = decode(&token.unwrap(), "fp").unwrap();
        let (second, token) = page(items, |s| s, Some(&after), 5, "fp");
        assert_eq!(second, vec!["k5", "k6"]);
        assert_eq!(token, None);
    }
}
