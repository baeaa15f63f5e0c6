//! Milter throughput through the real protocol (work in progress).

fn main() {}
