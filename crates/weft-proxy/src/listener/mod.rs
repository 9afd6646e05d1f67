//! Listeners: binding, accepting, listener filters and filter-chain selection.

pub mod filter_chain;

#[cfg(test)]
mod tests;
