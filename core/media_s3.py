"""The shared media store on S3-compatible object storage (`MEDIA_URL=s3://bucket/prefix`).

Objects are named `<prefix>/<key>`; the key is the file's path under MEDIA_DIR, which stays
this instance's working cache. Every call goes through aiobotocore with SigV4 (presigned
GETs need it). The secret key stays a SecretStr until the client is made, and no message
here carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
PART_SIZE = 16 * MB  # bigger files go up in parts of this size (read in a thread, one at a time)
REFRESH_AFTER = 600  # seconds: a re-kept object younger than this is not uploaded again
DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
MAX_PRESIGN = 7 * 86400  # SigV4 presigned URLs last at most a week


def parse_media_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix"); ValueError when malformed."""
    parts = urlsplit(url)
    bucket = parts.netloc
    if parts.scheme != "s3" or not bucket:
        raise ValueError("must be s3://BUCKET or s3://BUCKET/PREFIX (empty = MEDIA_DIR only)")
    if parts.query or parts.fragment or "@" in bucket or ":" in bucket:
        raise ValueError("must be s3://BUCKET/PREFIX, without credentials, port or query")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")
    if not (3 <= len(bucket) <= 63) or not set(bucket) <= allowed:
        raise ValueError(f"bucket name {bucket!r} is not valid (3-63 of a-z 0-9 . - _)")
    return bucket, parts.path.strip("/")


class S3Bucket:
    """`SharedMedia` on a bucket: the source of truth every instance reads and writes."""

    shared = True

    def __init__(
        self, bucket: str, prefix: str = "", *, access_key_id: str, secret_access_key: SecretStr,
        endpoint_url: str | None = None, region: str = "us-east-1", public: bool = False,
        part_size: int = PART_SIZE, page_size: int = 1000, delete_batch: int = DELETE_BATCH,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region
        self.public = public
        self.part_size = part_size
        self.page_size = page_size
        self.delete_batch = delete_batch
        self._access_key_id = access_key_id
        self._secret = secret_access_key
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Bucket:
        assert settings.media_url and settings.s3_access_key_id and settings.s3_secret_access_key
        bucket, prefix = parse_media_url(settings.media_url)
        return cls(bucket, prefix, access_key_id=settings.s3_access_key_id,
                   secret_access_key=settings.s3_secret_access_key,
                   endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                   public=settings.media_public)

    def __repr__(self) -> str:
        return f"S3Bucket({self.where})"

    @property
    def where(self) -> str:
        place = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{place} at {self.endpoint_url or 'AWS'}"

    def name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1:] if self.prefix else name

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        if self._client is not None:
            return
        config = AioConfig(
            signature_version="s3v4",  # presigned GETs are refused without it
            # An endpoint of our own (MinIO, R2, rclone…) is addressed by path.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            # Checksums only where S3 requires them: many S3-compatible servers lack the rest.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10, read_timeout=120,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._client = await self._stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret.get_secret_value(), config=config,
        ))
        try:
            await self._check()
        except BaseException:
            await self.close()
            raise
        log.info("media: shared store %s%s", self.where, " (public)" if self.public else "")

    async def _check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            await self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.name(""), MaxKeys=1)
        except EndpointConnectionError:
            raise ConfigError(
                f"S3_ENDPOINT_URL: cannot reach {self.endpoint_url or 'AWS S3'}") from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "?"))
            raise ConfigError(self._refusal(code)) from None
        except (BotoCoreError, OSError) as exc:
            raise ConfigError(f"S3_ENDPOINT_URL: {self.endpoint_url or 'AWS S3'} did not"
                              f" answer as S3 storage ({type(exc).__name__})") from None

    def _refusal(self, code: str) -> str:
        if code in ("NoSuchBucket", "404"):
            return f"MEDIA_URL: there is no bucket {self.bucket!r} at {self.endpoint_url or 'AWS'}"
        if code == "InvalidAccessKeyId":
            return "S3_ACCESS_KEY_ID: the storage does not know this access key"
        if code == "SignatureDoesNotMatch":
            return "S3_SECRET_ACCESS_KEY: the storage refused it (wrong secret key)"
        if code in ("AccessDenied", "403", "Forbidden"):
            return (f"S3_ACCESS_KEY_ID: this key may not list bucket {self.bucket!r}"
                    " (check it, S3_SECRET_ACCESS_KEY and the key's permissions)")
        if code in ("AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException"):
            return f"S3_REGION: the storage refused region {self.region!r} ({code})"
        return f"MEDIA_URL: the storage refused {self.where} ({code})"

    async def ping(self) -> bool:
        """Whether the bucket answers a listing now (for /readyz); never raises."""
        if self._client is None:
            return False
        try:
            await self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.name(""), MaxKeys=1)
        except Exception as exc:  # any failure is "not ready"; the reason goes to the log
            log.warning("media: %s does not answer (%s)", self.where, type(exc).__name__)
            return False
        return True

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Bucket used before start()")
        return self._client

    # -- objects ---------------------------------------------------------------------------
    async def _age(self, name: str) -> float | None:
        """Seconds since the object was written, as the clean-up sees it (from a listing:
        some servers answer HEAD with another time); None when there is none."""
        found = await self.client.list_objects_v2(Bucket=self.bucket, Prefix=name, MaxKeys=1)
        for item in found.get("Contents", ()):
            if item["Key"] == name:
                modified: dt.datetime = item["LastModified"]
                return time.time() - modified.timestamp()
        return None

    async def put(self, key: str, source: Path, *, refresh: bool = False) -> None:
        name = self.name(key)
        age = await self._age(name)
        # Same key, same bytes: only an old copy of something in use again is written anew,
        # which restarts its clock for the clean-up.
        if age is not None and (not refresh or age < REFRESH_AFTER):
            return
        await self._upload(name, source)

    async def _upload(self, name: str, source: Path) -> None:
        size = source.stat().st_size
        if size <= self.part_size:
            data = await asyncio.to_thread(source.read_bytes)
            await self.client.put_object(Bucket=self.bucket, Key=name, Body=data)
            return
        upload = await self.client.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            handle = await asyncio.to_thread(source.open, "rb")
            with handle:
                while chunk := await asyncio.to_thread(handle.read, self.part_size):
                    number = len(parts) + 1
                    sent = await self.client.upload_part(
                        Bucket=self.bucket, Key=name, PartNumber=number, UploadId=upload_id,
                        Body=chunk)
                    parts.append({"ETag": sent["ETag"], "PartNumber": number})
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException:
            # A half upload costs storage until aborted.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id))
            raise

    async def get(self, key: str, dest: Path) -> bool:
        from botocore.exceptions import ClientError

        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=self.name(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                return False
            raise
        handle = await asyncio.to_thread(dest.open, "wb")
        with handle:
            async with answer["Body"] as body:
                while chunk := await body.read(1 << 20):
                    await asyncio.to_thread(handle.write, chunk)
        return True

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self.name(key))

    async def clean(self, cutoff_for: Callable[[str], float]) -> int:
        """List the prefix page by page; delete what is older than its cutoff in batches."""
        removed = 0
        batch: list[dict[str, str]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self.name("")
        async for page in paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}):
            for item in page.get("Contents", ()):
                name = str(item["Key"])
                modified: dt.datetime = item["LastModified"]
                if modified.timestamp() < cutoff_for(self._key(name)):
                    batch.append({"Key": name})
                if len(batch) >= self.delete_batch:
                    removed += await self._delete_batch(batch)
                    batch = []
        if batch:
            removed += await self._delete_batch(batch)
        return removed

    async def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        answer = await self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = answer.get("Errors", [])
        for error in errors[:5]:
            log.warning("media cleanup: could not delete %s (%s)", error.get("Key"),
                        error.get("Code"))
        return len(batch) - len(errors)

    async def presigned_url(self, key: str, expires: int) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.name(key)},
            ExpiresIn=max(1, min(int(expires), MAX_PRESIGN)))
        return url
