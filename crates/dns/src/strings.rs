//! TXT-style records as published, for linting a domain's SPF setup.
//!
//! [`Lookup::lookup_txt`] joins a record's character-strings (RFC 7208
//! §3.3), which is what evaluation needs. A linter needs more: where one
//! string ends and the next begins (an author who split `… ip4:192.0.2.0/24`
//! `include:…` without a trailing space glued two terms together), how long
//! each string is (RFC 1035 §3.3: at most 255 octets), and whether a record
//! is published only as the obsolete SPF type 99 (RFC 7208 §3.1, §14.1),
//! which receivers no longer ask for. [`TxtStrings`] answers those
//! questions; the SPF engine never uses it.

use std::future::{Future, ready};

use crate::memory::{Answer, RecordData, RecordType, Zone};
use crate::{LookupError, LookupResult};

/// One TXT-style record: its character-strings, as bytes, in order.
pub type CharacterStrings = Vec<Vec<u8>>;

/// The two record types that have carried SPF records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextType {
    /// TXT (16), the only type RFC 7208 uses.
    Txt,
    /// SPF (99), defined by RFC 4408 and removed by RFC 7208 §14.1.
    Spf,
}

impl TextType {
    /// The type's mnemonic.
    pub fn as_str(self) -> &'static str {
        match self {
            TextType::Txt => "TXT",
            TextType::Spf => "SPF",
        }
    }

    /// The QTYPE number.
    pub fn code(self) -> u16 {
        match self {
            TextType::Txt => 16,
            TextType::Spf => 99,
        }
    }
}

/// TXT-style records with their character-strings kept apart.
///
/// Errors follow [`Lookup`](crate::Lookup): `NxDomain` and `NoData` are
/// "no records", everything else a temporary failure; an `Ok` answer holds
/// at least one record.
pub trait TxtStrings: Send + Sync {
    /// The records of type `rtype` at `name` (CNAMEs followed), each as its
    /// character-strings.
    fn lookup_strings(
        &self,
        name: &str,
        rtype: TextType,
    ) -> impl Future<Output = LookupResult<Vec<CharacterStrings>>> + Send;
}

impl<L: TxtStrings + ?Sized> TxtStrings for &L {
    fn lookup_strings(
        &self,
        name: &str,
        rtype: TextType,
    ) -> impl Future<Output = LookupResult<Vec<CharacterStrings>>> + Send {
        (**self).lookup_strings(name, rtype)
    }
}

impl TxtStrings for Zone {
    /// A zone keeps strings as written, so a string over 255 octets (which
    /// the wire cannot carry) is returned whole: offline zones are where a
    /// linter can see one.
    fn lookup_strings(
        &self,
        name: &str,
        rtype: TextType,
    ) -> impl Future<Output = LookupResult<Vec<CharacterStrings>>> + Send {
        let zone_type = match rtype {
            TextType::Txt => RecordType::Txt,
            TextType::Spf => RecordType::Spf,
        };
        let answer = match self.query(name, zone_type) {
            Answer::Records(records) => Ok(records
                .into_iter()
                .filter_map(|(_, data)| match data {
                    RecordData::Txt(s) | RecordData::Spf(s) => {
                        Some(s.into_iter().map(String::into_bytes).collect())
                    }
                    _ => None,
                })
                .collect()),
            Answer::NoData(_) => Err(LookupError::NoData),
            Answer::NxDomain(_) => Err(LookupError::NxDomain),
            Answer::Timeout => Err(LookupError::Timeout),
            Answer::ServFail => Err(LookupError::ServerFailure("SERVFAIL".into())),
        };
        ready(answer)
    }
}

/// Splits the RDATA of an unknown TXT-like type (such as SPF 99 as a
/// resolver hands it over, undecoded) into its character-strings; `None`
/// if a length byte points past the end.
pub fn split_character_strings(mut rdata: &[u8]) -> Option<CharacterStrings> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let len = usize::from(len);
        if rest.len() < len {
            return None;
        }
        out.push(rest[..len].to_vec());
        rdata = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::block_on;

    #[test]
    fn zone_keeps_strings_apart_and_types_apart() {
        let mut zone = Zone::new();
        zone.add(
            "example.com",
            RecordData::Txt(vec!["v=spf1 ip4:192.0.2.0/24".into(), "-all".into()]),
        );
        zone.add(
            "only99.example.com",
            RecordData::Spf(vec!["v=spf1 -all".into()]),
        );
        let txt = block_on(zone.lookup_strings("example.com", TextType::Txt)).unwrap();
        assert_eq!(
            txt,
            vec![vec![b"v=spf1 ip4:192.0.2.0/24".to_vec(), b"-all".to_vec()]]
        );
        assert_eq!(
            block_on(zone.lookup_strings("only99.example.com", TextType::Txt)),
            Err(LookupError::NoData)
        );
        assert_eq!(
            block_on(zone.lookup_strings("only99.example.com", TextType::Spf)).unwrap(),
            vec![vec![b"v=spf1 -all".to_vec()]]
        );
        assert_eq!(
            block_on(zone.lookup_strings("nowhere.example.com", TextType::Spf)),
            Err(LookupError::NxDomain)
        );
    }

    #[test]
    fn raw_rdata_splits_into_character_strings() {
        assert_eq!(
            split_character_strings(b"\x03abc\x00\x01d"),
            Some(vec![b"abc".to_vec(), Vec::new(), b"d".to_vec()])
        );
        assert_eq!(split_character_strings(b""), Some(Vec::new()));
        assert_eq!(split_character_strings(b"\x05ab"), None);
    }
}
