//! The gallery domain's tables (its index is tantivy's, in `<data_dir>/gallery/`).

crate::tables! {
    /// viewer role (`user`, `streamer`, …) → Rule: what that role's feed shows, and how.
    RULES: &str => &[u8] = "gallery_rule";
}
