"""Adapters that keep dagcast's state in AWS: DynamoDB and Step Functions."""
