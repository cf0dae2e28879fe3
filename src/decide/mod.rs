//! Decisioning: the expression language of eligibility rules (and feature filters). The
//! arbitration engine grows here.

pub mod expr;
