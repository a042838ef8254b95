"""The media key contract between the product service (writer) and the upload service
(reader), and the reading of S3 notifications."""

from __future__ import annotations

import json

import pytest

from bmt_product import domain
from bmt_upload.s3events import PoisonMessage, media_ref, object_created


@pytest.mark.parametrize(
    ("owner", "slot", "ext"),
    [("film", "poster", ".png"), ("film", "trailer", ".mp4"), ("fab", "image", ".webp")],
)
def test_keys_written_by_product_are_read_by_upload(owner: str, slot: str, ext: str) -> None:
    key = domain.media_key(owner, 42, slot, ext)  # type: ignore[arg-type]
    ref = media_ref(key)
    assert ref is not None
    assert (ref.owner, ref.owner_id, ref.slot) == (owner, 42, slot)


@pytest.mark.parametrize(
    "key", ["films/1/poster.png", "other/1/poster-x.png", "films/x/poster-" + "a" * 32 + ".png"]
)
def test_other_objects_are_not_media(key: str) -> None:
    assert media_ref(key) is None


def notification(event: object) -> str:
    return json.dumps(
        {"Type": "Notification", "TopicArn": "arn:aws:sns:t", "Message": json.dumps(event)}
    )


def test_object_created_keys_are_url_decoded() -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "films%2F1%2Fposter+x.png", "size": 5, "sequencer": "01"},
                },
            }
        ]
    }
    [record] = object_created(notification(event))
    assert (record.bucket, record.key, record.size) == ("b", "films/1/poster x.png", 5)


def test_the_same_put_has_the_same_event_id_and_a_new_put_a_new_one() -> None:
    def record(sequencer: str) -> str:
        return notification(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "bucket": {"name": "b"},
                            "object": {"key": "k", "sequencer": sequencer},
                        },
                    }
                ]
            }
        )

    assert object_created(record("01"))[0].event_id == object_created(record("01"))[0].event_id
    assert object_created(record("01"))[0].event_id != object_created(record("02"))[0].event_id


def test_test_events_and_deletions_are_skipped() -> None:
    assert object_created(notification({"Event": "s3:TestEvent", "Bucket": "b"})) == []
    deletion = {
        "Records": [
            {
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}},
            }
        ]
    }
    assert object_created(notification(deletion)) == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"TopicArn": "t", "Message": "[1, 2"}),
        notification({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        notification([1]),
        # Shapes that once escaped as AttributeError and stopped the worker:
        notification({"Records": "not a list"}),
        notification({"Records": [1]}),
        notification({"Records": [{"eventName": "ObjectCreated:Put", "s3": "x"}]}),
        notification(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "b"}, "object": {"key": 12}},
                    }
                ]
            }
        ),
        json.dumps([]),
        json.dumps({"TopicArn": "t", "Message": 5}),
        "123",
    ],
)
def test_unreadable_messages_are_poison(body: str) -> None:
    with pytest.raises(PoisonMessage):
        object_created(body)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"\x1a\x45\xdf\xa3", "video/webm"),
        (b"GIF89a", None),
    ],
)
def test_media_types_are_judged_by_content(head: bytes, kind: str | None) -> None:
    assert domain.sniff(head) == kind


def test_genres_are_checked() -> None:
    form = {"title": "T", "release_date": "2026-01-01", "duration_minutes": 90, "age_rating": "P"}
    assert domain.FilmForm.model_validate({**form, "genres": "drama, action,drama"}).genres == [
        "action",
        "drama",
    ]
    with pytest.raises(ValueError, match="unknown genres"):
        domain.FilmForm.model_validate({**form, "genres": "drama,telenovela"})
