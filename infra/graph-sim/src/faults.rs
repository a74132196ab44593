//! Fault injection: seeded coin flips deciding which Graph requests fail, hang, or lose their
//! answer. Every decision draws from `State::fault_rng`, so a given seed and request order
//! reproduce the same faults.

use rand::Rng;

use crate::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Hang for `config.timeout`, then answer 504 without a Graph body.
    Timeout,
    /// Answer HTTP 500 with Graph error code 2.
    ServerError,
}

impl State {
    /// `true` with probability `rate`. A rate of 0 draws nothing, so enabling one kind of fault
    /// does not shift the sequence of another that is off.
    pub fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.fault_rng.random::<f64>() < rate
    }

    /// Decides whether a Graph request is answered by an injected fault instead of the API.
    pub fn roll_request_fault(&mut self) -> Option<Fault> {
        if self.roll(self.config.timeout_rate) {
            return Some(Fault::Timeout);
        }
        if self.roll(self.config.error_rate) {
            return Some(Fault::ServerError);
        }
        None
    }

    /// Decides whether the answer to a publish that went through is lost on the way back.
    pub fn roll_lost_publish(&mut self) -> bool {
        self.roll(self.config.lost_publish_rate)
    }
}
