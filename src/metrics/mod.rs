//! What the metrics show: the snapshot (pure aggregation of API data) and its exposition
//! (rendered once per sweep, plain and gzip).

pub mod exposition;
pub mod snapshot;
