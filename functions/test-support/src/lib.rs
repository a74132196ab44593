//! Test support for instapipe, kept out of the production crate: the signed sample requests of
//! `samples/` (written by `samples/generate.py`) and a signer for the webhook schemes whose
//! senders the tests and the local tools play. instapipe-core takes this crate as a
//! dev-dependency only; the local stack (not deployed) takes it for its tests and its soak.

pub mod samples;
pub mod signing;

#[cfg(test)]
mod standalone;
