//! How a driver tells a failed invocation from a successful one, whatever the handler returns.

use std::fmt::Display;

/// The result of one invocation as Lambda would see it: `Some(message)` is a function error.
pub trait InvocationOutcome {
    fn error_message(&self) -> Option<String>;
}

impl InvocationOutcome for () {
    fn error_message(&self) -> Option<String> {
        None
    }
}

impl<T, E: Display> InvocationOutcome for Result<T, E> {
    fn error_message(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}
