//! Pins the DynamoDB, SQS FIFO and Secrets Manager behaviours Reelay relies on, against the local AWS endpoint.
