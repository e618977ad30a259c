//! Demo scenario (placeholder)
