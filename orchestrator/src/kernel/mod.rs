//! Guest kernel build and its cache.
