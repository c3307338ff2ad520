//! `client-webhooks`: Reelay's webhooks to the client. The use cases (which event goes where,
//! signing, the retry schedule) live in `reelay_domain::usecase::Outbound`; this function decodes
//! its two triggers — the table's change stream (dispatch) and the delivery queue (attempts) —
//! calls them, and carries attempts over HTTP ([`sender`]).

pub mod config;
pub mod handler;
pub mod sender;
pub mod wiring;

pub use handler::{Deps, HandlerError};
pub use sender::{HttpSender, SenderError, SenderSettings};
