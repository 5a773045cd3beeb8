"""The AWS backend: S3, DynamoDB, EventBridge, ACM and AWS IoT through boto3 clients."""
