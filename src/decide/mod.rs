//! Decisioning: the expression language of eligibility rules (and feature filters), the
//! contact history and policy, and the arbitration [`Engine`] that the server and batch
//! scoring share. Nothing here does I/O or knows about HTTP.

pub mod contact;
pub mod engine;
pub mod expr;
pub mod load;
pub mod log;
pub mod name;
pub mod policy;

pub use contact::ContactHistory;
pub use engine::{
    Chosen, CustomerView, DO_NOTHING, DecideInput, Decision, Dropped, Engine, ModelSlot, Models,
    NO_CHANNEL, Ranked,
};
pub use load::load_engine;
pub use log::{DecisionRecord, LoggedCandidate, decisions_batch};
pub use name::Name;
pub use policy::{ChannelCap, DecideConfig, Exploration, QuietHours};

#[cfg(test)]
mod tests;
