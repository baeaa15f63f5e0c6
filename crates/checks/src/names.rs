//! The one matcher for every list of domain names in the configuration
//! (`local_names`, `helo.refused`, `skip.helo_names`,
//! `skip.sender_domains`): `host.example.com` matches that name only,
//! `.example.com` every name under example.com (not example.com itself).
//! Case does not matter (RFC 4343) and a trailing dot is ignored.

/// The entry of `list` that `name` matches, if any.
pub fn find_name<'a, S: AsRef<str>>(list: &'a [S], name: &str) -> Option<&'a str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    list.iter().map(AsRef::as_ref).find(|entry| {
        let entry = entry.strip_suffix('.').unwrap_or(entry);
        match entry.strip_prefix('.') {
            Some(parent) => {
                let Some(cut) = name.len().checked_sub(parent.len() + 1) else {
                    return false;
                };
                cut > 0
                    && name.is_char_boundary(cut)
                    && name.as_bytes()[cut] == b'.'
                    && name[cut + 1..].eq_ignore_ascii_case(parent)
            }
            None => entry.eq_ignore_ascii_case(name),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::find_name;

    #[test]
    fn leading_dot_matches_every_name_under_the_domain() {
        let list = [".hostile.test", "relay.example.com."];
        assert_eq!(find_name(&list, "mail.hostile.test"), Some(".hostile.test"));
        assert_eq!(find_name(&list, "a.b.HOSTILE.test."), Some(".hostile.test"));
        assert_eq!(find_name(&list, "hostile.test"), None);
        assert_eq!(find_name(&list, "nothostile.test"), None);
        assert_eq!(
            find_name(&list, "Relay.Example.com"),
            Some("relay.example.com.")
        );
        assert_eq!(find_name(&list, "other.example.com"), None);
        assert_eq!(find_name(&list, "é.hostile.test"), Some(".hostile.test"));
        assert_eq!(find_name::<&str>(&[], "x.test"), None);
    }
}
