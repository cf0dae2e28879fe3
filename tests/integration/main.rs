//! Baton's one integration-test binary; each module tests one area end to end.

mod alloc;
mod batch;
mod cli;
mod clv;
mod features;
mod import;
mod ingest;
mod models;
mod ope;
mod serve;
mod sim;
