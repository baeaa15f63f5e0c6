//! A private Sendmail instance for one test (see below).
