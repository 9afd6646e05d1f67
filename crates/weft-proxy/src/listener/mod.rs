//! Listeners: binding, accepting, listener filters and filter-chain selection.

pub mod filter_chain;
pub mod inspect;
pub mod runtime;

#[cfg(test)]
mod tests;
