"""SQS: long-poll receiving and batched acknowledgements."""
