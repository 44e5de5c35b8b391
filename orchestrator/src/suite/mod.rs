//! The suite model: TOML suites parsed and validated into plans.
