//! Fuzz target: the SPF record parser.
//!
//! Bytes become a string (lossily), go through `Record::is_spf1` and
//! `Record::parse`; a record that parses must display as text that is a
//! v=spf1 record and re-parses to an equal record, and a parse error must
//! point at a term of the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_spf::Record;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Record::is_spf1(&text);
    match Record::parse(&text) {
        Ok(record) => {
            let shown = record.to_string();
            assert!(Record::is_spf1(&shown), "display {shown:?} is not v=spf1");
            let again = Record::parse(&shown)
                .unwrap_or_else(|e| panic!("display {shown:?} of {text:?} does not re-parse: {e}"));
            assert_eq!(
                again, record,
                "display {shown:?} of {text:?} re-parses differently"
            );
            assert_eq!(again.to_string(), shown);
        }
        Err(e) => {
            assert!(e.position >= 1);
            assert!(
                e.offset >= 6 && e.offset < text.len(),
                "offset {} in {text:?}",
                e.offset
            );
            assert!(text.is_char_boundary(e.offset));
            assert!(e.offset == 6 || text.as_bytes()[e.offset - 1] == b' ');
            let _ = e.to_string();
        }
    }
});
