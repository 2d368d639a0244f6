//! Search (filled in later).
