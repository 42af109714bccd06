"""The Mini App's own rows: a resident's draft of the one-form report, the photos uploaded for
it, and the submissions already filed.

A draft lives on the server so that it survives closing the app (and a second device). A photo
is kept as the checked, re-encoded image the server made of the upload (never the bytes as
sent: no metadata, no location, no second format); a case filed from the app names its photos
``upload:<key>`` until Telegram has them, and the sender then learns their file ids. A
submission's id is chosen by the app once per draft, so a double tap or a retry files one case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, LargeBinary
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

UPLOAD_PREFIX = "upload:"  # a case photo the bot still has to upload


class WebAppDraft(SQLModel, table=True):
    __tablename__ = "webapp_drafts"

    user_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class PhotoUpload(SQLModel, table=True):
    __tablename__ = "photo_uploads"

    key: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(sa_type=BigInteger, index=True)
    content: bytes = Field(sa_type=LargeBinary)
    width: int
    height: int
    created_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # The case it was filed with (None: still in a draft).
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)


class WebAppSubmission(SQLModel, table=True):
    __tablename__ = "webapp_submissions"

    submission: str = Field(primary_key=True, max_length=36)
    user_id: int = Field(sa_type=BigInteger, index=True)
    # Set in the same transaction, once the case is filed.
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
