//! Classifies kernel logs into findings (pure: text in, findings out).
