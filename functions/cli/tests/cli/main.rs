//! The `instapipe` binary from outside, in one test binary (one link on a 2-core machine).

mod env_file;
mod mcp;
