"""The upload service: S3 object-created events from SQS become media_uploaded on Kafka."""
