"""moto's server plays S3, SNS, SQS and SES: the media pipeline's wiring and the mail path."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote_plus

import aioboto3
import aiohttp
import pytest

REGION = "us-east-1"


@pytest.fixture(scope="session")
def aws(aws_endpoint: str) -> dict[str, Any]:
    """Keyword arguments for an aioboto3 client of the stack's moto server."""
    return {
        "endpoint_url": aws_endpoint,
        "region_name": REGION,
        "aws_access_key_id": "bmt",
        "aws_secret_access_key": "bmt",
    }


async def test_put_object_travels_s3_sns_sqs(aws: dict[str, Any], unique: str) -> None:
    session = aioboto3.Session()
    bucket, key = f"media-{unique}", "films/poster one.png"
    async with (
        session.client("s3", **aws) as s3,
        session.client("sns", **aws) as sns,
        session.client("sqs", **aws) as sqs,
    ):
        topic_arn = (await sns.create_topic(Name=f"media-{unique}"))["TopicArn"]
        queue_url = (await sqs.create_queue(QueueName=f"media-{unique}"))["QueueUrl"]
        queue_arn = (
            await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        )["Attributes"]["QueueArn"]
        await sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "false"},
        )
        await s3.create_bucket(Bucket=bucket)
        await s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        await s3.put_object(Bucket=bucket, Key=key, Body=b"\x89PNG...")

        records: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 20
        while not records and asyncio.get_running_loop().time() < deadline:
            got = await sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in got.get("Messages", []):
                event = json.loads(json.loads(message["Body"])["Message"])
                if event.get("Event") == "s3:TestEvent":
                    continue  # S3 sends one when the notification is configured
                records.extend(event["Records"])
    assert len(records) == 1
    record = records[0]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == bucket
    # Keys arrive URL-encoded (space as '+'), as from AWS: consumers must decode them.
    raw_key = record["s3"]["object"]["key"]
    assert raw_key != key
    assert unquote_plus(raw_key) == key


async def test_ses_send_is_readable_back(
    aws: dict[str, Any], aws_endpoint: str, unique: str
) -> None:
    sender, recipient = f"no-reply-{unique}@bmt.local", f"client-{unique}@example.com"
    async with aioboto3.Session().client("ses", **aws) as ses:
        await ses.verify_email_identity(EmailAddress=sender)
        sent = await ses.send_email(
            Source=sender,
            Destination={"ToAddresses": [recipient]},
            Message={
                "Subject": {"Data": "Your BMT code"},
                "Body": {"Text": {"Data": f"code {unique}"}},
            },
        )
    # moto's own API lists what SES "sent": the only way to read a mail back here.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{aws_endpoint}/moto-api/data.json") as response,
    ):
        messages = (await response.json(content_type=None))["ses"]["Message"]
    mine = [m for m in messages if m["id"] == sent["MessageId"]]
    assert mine == [
        {
            "id": sent["MessageId"],
            "source": sender,
            "destinations": {"ToAddresses": [recipient]},
            "subject": "Your BMT code",
            "body": f"code {unique}",
        }
    ]
