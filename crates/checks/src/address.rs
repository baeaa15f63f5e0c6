//! Addresses as the SMTP conversation gives them: the client address
//! (an IPv4-mapped IPv6 address is the IPv4 client it maps) and the MAIL
//! FROM path (RFC 5321 §4.1.2), parsed once.

pub use tollgate_spf::address::{canonical, strip_brackets};

/// The MAIL FROM address, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailFrom {
    address: String,
    at: Option<usize>,
}

impl MailFrom {
    /// Parses the MAIL FROM argument, with or without angle brackets.
    pub fn parse(path: &str) -> MailFrom {
        let address = strip_brackets(path).to_owned();
        let at = address.rfind('@');
        MailFrom { address, at }
    }

    /// The address without angle brackets; empty for the null sender.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether this is the null sender `<>` (bounces, RFC 5321 §4.5.5).
    pub fn is_null(&self) -> bool {
        self.address.is_empty()
    }

    /// The domain: the part after the last `@`, the whole address when
    /// there is no `@`, empty for the null sender.
    pub fn domain(&self) -> &str {
        match self.at {
            Some(at) => &self.address[at + 1..],
            None => &self.address,
        }
    }

    /// Whether the address names a domain after an `@` (`alice` and `@`
    /// do not).
    pub fn has_domain(&self) -> bool {
        self.at.is_some() && !self.domain().is_empty()
    }

    /// The local part: before the last `@`, empty when there is none.
    pub fn local_part(&self) -> &str {
        match self.at {
            Some(at) => &self.address[..at],
            None => "",
        }
    }

    /// The sender as SPF checks it: the null sender is
    /// `postmaster@<helo>` (RFC 7208 §2.4).
    pub fn spf_sender(&self, helo: &str) -> tollgate_spf::Sender {
        if self.is_null() {
            return tollgate_spf::Sender {
                local_part: "postmaster".to_owned(),
                domain: helo.to_owned(),
            };
        }
        tollgate_spf::Sender {
            local_part: self.local_part().to_owned(),
            domain: self.domain().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_from_is_split_at_the_last_at_sign() {
        let m = MailFrom::parse(" <\"a@b\"@Example.COM> ");
        assert_eq!(m.address(), "\"a@b\"@Example.COM");
        assert_eq!(m.domain(), "Example.COM");
        assert_eq!(m.local_part(), "\"a@b\"");
        assert!(MailFrom::parse("<>").is_null());
        let null = MailFrom::parse("<>").spf_sender("mx.example.com");
        assert_eq!(
            (null.local_part.as_str(), null.domain.as_str()),
            ("postmaster", "mx.example.com")
        );
        assert_eq!(MailFrom::parse("example.com").domain(), "example.com");
        assert_eq!(strip_brackets("<x@example.com>"), "x@example.com");
    }
}
