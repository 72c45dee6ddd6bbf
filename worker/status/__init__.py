"""The DynamoDB status table: one record per request, a small state machine."""
