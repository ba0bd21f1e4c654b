//! The billing domain's tables.

crate::tables! {
    /// tariff id → Tariff (its current version).
    TARIFFS: &str => &[u8] = "billing_tariff";
    /// (tariff id, version) → Tariff: every version ever used, so a call keeps the one it
    /// connected with.
    TARIFF_VERSIONS: (&str, u32) => &[u8] = "billing_tariff_version";
}
