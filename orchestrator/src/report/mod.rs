//! Report writers: JUnit XML, IGT results.json, the markdown summary, the
//! HTML page, the results directory that holds them, and the merge of shard
//! results.
//!
//! Renderers are pure (results in, text out); `results_dir` is the only part
//! that touches files, and it replaces each file atomically so a killed run
//! still leaves valid reports.

pub mod github;
pub mod html;
pub mod igt_json;
pub mod junit;
pub mod merge;
pub mod results_dir;
pub mod sink;
pub mod summary;
pub mod terminal;

#[cfg(test)]
mod tests;
