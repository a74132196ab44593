//! Fault injection: seeded coin flips deciding which Graph requests fail, are answered late
//! (after the work was done), or lose their answer. Every decision draws from `State::fault_rng`, so a given seed and request order
//! reproduce the same faults.

use rand::Rng;

use crate::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Carry the request out, then send its answer only after `config.timeout`: a client that
    /// gave up earlier does not know that the work was done.
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

    /// Decides whether a carousel container that was just made is answered late: the test
    /// hook's count first, then `carousel_timeout_rate`.
    pub fn late_carousel_creation(&mut self) -> bool {
        if self.carousel_creations_to_answer_late > 0 {
            self.carousel_creations_to_answer_late -= 1;
            return true;
        }
        self.roll(self.config.carousel_timeout_rate)
    }

    /// Decides whether the answer to a publish that went through is lost on the way back.
    pub fn roll_lost_publish(&mut self) -> bool {
        self.roll(self.config.lost_publish_rate)
    }
}
