//! Report writers: JUnit XML, IGT results.json, terminal output.
