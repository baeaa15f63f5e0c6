//! Domain name checks: which names check_host accepts (RFC 7208 §4.3) and
//! which expanded names can be queried at all (RFC 1035 §2.3.4 lengths).

/// Whether `name` may be looked up: total length at most 253 and every
/// label 1 to 63 octets (a single trailing dot is allowed). Any octets are
/// allowed inside labels, since macro expansion can put them there.
pub(crate) fn check_query_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("empty domain name".to_owned());
    }
    if bare.len() > 253 {
        return Err(format!("domain name longer than 253 characters: {bare}"));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in domain name {bare}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 characters in {bare}"));
        }
    }
    Ok(())
}

/// Whether check_host can run on `domain` (RFC 7208 §4.3): a well-formed,
/// multi-label name of letters, digits, hyphens and underscores whose top
/// label is not numeric. Anything else (an address literal, a bare word,
/// an empty label, a label over 63 octets) gives the result none.
pub(crate) fn check_domain(domain: &str) -> Result<(), String> {
    check_query_name(domain).map_err(|why| format!("not a valid domain: {why}"))?;
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    if let Some(c) = bare
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("not a valid domain: {bare:?} contains {c:?}"));
    }
    match bare.rsplit_once('.') {
        None => Err(format!("not a fully qualified domain: {bare}")),
        Some((_, top)) if top.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("not a domain name: {bare} has a numeric top label"))
        }
        Some(_) => Ok(()),
    }
}

/// Whether `name` is `parent` or a subdomain of it, ignoring ASCII case
/// and trailing dots (the ptr mechanism's test, RFC 7208 §5.5).
pub(crate) fn is_within(name: &str, parent: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let parent = parent.strip_suffix('.').unwrap_or(parent);
    if name.len() < parent.len() {
        return false;
    }
    let split = name.len() - parent.len();
    name.is_char_boundary(split)
        && name[split..].eq_ignore_ascii_case(parent)
        && (split == 0 || name.as_bytes()[split - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_processing_refuses_what_is_not_a_domain() {
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("_spf.example.com.").is_ok());
        for bad in [
            "A2345678",
            "[192.0.2.5]",
            "a...example.com",
            "192.0.2.5",
            "",
            "exa mple.com",
            &format!("{}.example.com", "a".repeat(64)),
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subdomain_test_respects_label_boundaries() {
        assert!(is_within("mail.example.com", "example.com"));
        assert!(is_within("Example.COM.", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
        assert!(!is_within("com", "example.com"));
    }
}
