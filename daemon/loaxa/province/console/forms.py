"""A request's fields as a plain dict, for the console's handlers (`web.Console.page` hands them over).

A field sent once is its value; sent more often (a list of checkboxes), a
list of its values; a file is `{"name", "content_type", "data"}` with its
bytes read. A JSON object body is taken as it is. A body announced larger
than the limit is refused with 413 before it is read.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

SLACK = 1024 * 1024  # beyond the upload limit: the other fields of a multipart form


async def read(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request body over {limit // (1024 * 1024)} MB")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(400, "the request body is not JSON") from None
        return body if isinstance(body, dict) else {"json": body}
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {}
    fields: dict[str, Any] = {}
    async with request.form(max_part_size=limit) as parsed:
        for key, value in parsed.multi_items():
            item: Any = value
            if isinstance(value, UploadFile):
                item = {
                    "name": value.filename or "",
                    "content_type": value.content_type or "application/octet-stream",
                    "data": await value.read(),
                }
            if key in fields:
                before = fields[key]
                fields[key] = [*before, item] if isinstance(before, list) else [before, item]
            else:
                fields[key] = item
    return fields
