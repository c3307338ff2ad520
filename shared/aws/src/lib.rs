//! DynamoDB, SQS FIFO and Secrets Manager adapters behind the domain's ports.
