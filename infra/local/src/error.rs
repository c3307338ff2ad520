use thiserror::Error;

/// Errors starting or stopping the local drivers. Handler failures are not errors here: they are
/// outcomes (failed batch, 500 response) reported the way Lambda reports them.
#[derive(Debug, Error)]
pub enum LocalError {
    /// template.yaml could not be read; the runner cannot know timeouts or routes without it.
    #[error("template: {0}")]
    Template(#[from] reelay_template::TemplateError),
    /// A logical id the runner named is not a function (or has no such event) in template.yaml.
    #[error("template has no function `{0}`")]
    UnknownFunction(String),
    /// A route key that is neither `$default` nor `METHOD /path`.
    #[error(
        "invalid route key `{0}`: expected `$default` or `METHOD /path` with {{param}} / {{param+}}"
    )]
    InvalidRoute(String),
    /// GetQueueAttributes failed, so the event source ARN is unknown.
    #[error("reading the ARN of {queue_url}: {message}")]
    QueueArn { queue_url: String, message: String },
    /// Batch size outside SQS's 1..=10 per ReceiveMessage, or zero concurrency.
    #[error("invalid driver setting: {0}")]
    InvalidSetting(String),
    /// Only `rate(N unit)` schedules run locally; a cron expression needs a calendar.
    #[error("schedule `{0}` is not a rate(N unit) expression")]
    UnsupportedSchedule(String),
    #[error("binding the HTTP front to {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A driver task panicked or was aborted instead of stopping on its token.
    #[error("driver `{name}` ended abnormally: {message}")]
    DriverFailed { name: String, message: String },
}
