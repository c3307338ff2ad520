//! The one error envelope every HTTP answer uses: `{"error":{"code","message","details"}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable, snake_case.
    pub code: String,
    pub message: String,
    /// Field-level errors, retry times, … ; `null` when there is nothing to add.
    pub details: Value,
}

/// One invalid field of a request, reported in `details.fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: Value::Null,
            },
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.error.details = details;
        self
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        Self::new("validation_failed", "The request has invalid fields")
            .with_details(serde_json::json!({ "fields": fields }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_to_the_seed_shape() {
        let env = ErrorEnvelope::new(
            "rate_limit_exceeded",
            "Per-account posting throttle reached",
        )
        .with_details(json!({"retryAfter": "2026-03-10T18:01:00Z"}));
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({"error": {"code": "rate_limit_exceeded",
                "message": "Per-account posting throttle reached",
                "details": {"retryAfter": "2026-03-10T18:01:00Z"}}})
        );
        let plain = serde_json::to_value(ErrorEnvelope::new("not_found", "x")).unwrap();
        assert_eq!(plain["error"]["details"], Value::Null);
    }
}
