//! `client-webhooks`: Reelay's webhooks to the client. The use cases (which event goes where,
//! signing, the retry schedule) live in `reelay_domain::usecase::Outbound`; this crate carries
//! them over HTTP ([`sender`]).

pub mod sender;

pub use sender::{HttpSender, SenderError, SenderSettings};
