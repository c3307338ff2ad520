//! Reads template.yaml: provisions its resources into a local AWS endpoint and checks its rules.
//!
//! template.yaml is the one source of truth for names and shapes: tests and the local stack get
//! their tables, queues, secrets and keys from here rather than from a second, hand-kept list.

pub mod expr;
pub mod model;
pub mod provision;
pub mod resolve;
pub mod rules;

pub use model::Template;
pub use provision::{
    ProvisionError, ProvisionOptions, Provisioned, ProvisionedKey, ProvisionedQueue,
    ProvisionedSecret, ProvisionedTable, ResourceKinds, provision,
};
pub use rules::{Violation, check};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("{path}: expected {expected}")]
    Shape {
        path: String,
        expected: &'static str,
    },
}
