//! Tests of the metrics: names, labels and values as encoded.
