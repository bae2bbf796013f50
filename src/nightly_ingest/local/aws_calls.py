"""Identify the AWS API call of an HTTP request, and build responses in the call's protocol.

The fault injector uses this to match rules against requests and to respond in place of moto.
Services are named as in the SigV4 credential scope (``dynamodb``, ``sqs``, ``s3``, ``states``,
``lambda``), because every signed request carries that name.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

JSON_PROTOCOL = "json"
QUERY_PROTOCOL = "query"
S3_PROTOCOL = "rest-xml"
LAMBDA_PROTOCOL = "rest-json"

_CREDENTIAL_SCOPE = re.compile(
    r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/(?P<service>[^/,\s]+)/aws4_request"
)
# Used only when a request is not signed with SigV4.
_TARGET_PREFIXES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "AWSStepFunctions": "states",
}
# S3 subresources that name a bucket-level action, such as GET /bucket?versioning.
_S3_BUCKET_SUBRESOURCES = {
    "acl": "Acl",
    "cors": "Cors",
    "encryption": "Encryption",
    "lifecycle": "LifecycleConfiguration",
    "location": "Location",
    "notification": "NotificationConfiguration",
    "policy": "Policy",
    "publicAccessBlock": "PublicAccessBlock",
    "tagging": "Tagging",
    "versioning": "Versioning",
}


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call: the service, the action and the resources that the request names.

    ``resources`` contains table, queue, bucket or function names. ``document`` is the request
    body parsed as JSON, or None when the body is not a JSON object.
    """

    service: str
    action: str
    protocol: str
    resources: tuple[str, ...] = ()
    document: dict[str, Any] | None = field(default=None, compare=False)
    http_method: str = "POST"


def identify_call(environ: dict[str, Any], body: bytes) -> AwsCall | None:
    """Return the AWS call that a WSGI request makes, or None when it is not a known AWS call.

    Handles the JSON protocol (X-Amz-Target), the query protocol (a form with ``Action``) and
    path-style S3 requests. Lambda invocations are identified by the local Lambda service.
    """
    service = _signing_service(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    method = environ.get("REQUEST_METHOD", "")
    if target:
        prefix, _, action = target.rpartition(".")
        service = service or _TARGET_PREFIXES.get(prefix)
        if service is None or not action:
            return None
        document = _json_object(body)
        return AwsCall(service, action, JSON_PROTOCOL, _json_resources(document), document, method)
    if service is None:
        return None
    if service == "s3":
        return _identify_s3_call(environ, body)
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", errors="replace"))
        action = form.get("Action", [""])[0]
        if not action:
            return None
        resources = tuple(_queue_name(url) for url in form.get("QueueUrl", []))
        if not resources and environ.get("PATH_INFO", "/") != "/":
            # The query protocol of SQS may put the queue URL in the path instead.
            resources = (environ["PATH_INFO"].rstrip("/").rsplit("/", 1)[-1],)
        return AwsCall(service, action, QUERY_PROTOCOL, resources, None, method)
    return None


def _signing_service(environ: dict[str, Any]) -> str | None:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match["service"] if match else None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _json_resources(document: dict[str, Any] | None) -> tuple[str, ...]:
    if document is None:
        return ()
    names: list[str] = []
    if isinstance(document.get("TableName"), str):
        names.append(document["TableName"])
    if isinstance(document.get("RequestItems"), dict):
        names.extend(str(table) for table in document["RequestItems"])
    if isinstance(document.get("QueueUrl"), str):
        names.append(_queue_name(document["QueueUrl"]))
    return tuple(names)


def _queue_name(queue_url: str) -> str:
    return urlparse(queue_url).path.rstrip("/").rsplit("/", 1)[-1]


def _identify_s3_call(environ: dict[str, Any], body: bytes) -> AwsCall | None:
    """Name the S3 action of a path-style request by its method, path and subresources."""
    method = environ.get("REQUEST_METHOD", "")
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return AwsCall("s3", "ListBuckets", S3_PROTOCOL, (), None, method)
    if not key:
        action = _s3_bucket_action(method, query)
    else:
        action = _s3_object_action(method, query, environ)
    if action is None:
        return None
    return AwsCall("s3", action, S3_PROTOCOL, (bucket,), None, method)


def _s3_bucket_action(method: str, query: dict[str, list[str]]) -> str | None:
    verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
    for subresource, noun in _S3_BUCKET_SUBRESOURCES.items():
        if subresource in query and verb is not None:
            return f"{verb}Bucket{noun}"
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method)


def _s3_object_action(
    method: str, query: dict[str, list[str]], environ: dict[str, Any]
) -> str | None:
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging"
        return "CopyObject" if "HTTP_X_AMZ_COPY_SOURCE" in environ else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else None
    if method == "GET":
        return "GetObjectTagging" if "tagging" in query else "GetObject"
    return {"HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method)


def error_response(call: AwsCall, status: int, code: str, message: str) -> Response:
    """Build an AWS error response in the call's protocol, which botocore parses as ``code``."""
    request_id = str(uuid.uuid4())
    sender = "Sender" if status < 500 else "Receiver"
    if call.protocol == JSON_PROTOCOL:
        headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code}
        if call.service == "sqs":
            # SQS responds in JSON but keeps the error codes of its query protocol in this header.
            headers["x-amzn-query-error"] = f"{code};{sender}"
        return json_response(call, {"__type": code, "message": message}, status, headers)
    if call.protocol == QUERY_PROTOCOL:
        body = (
            f"<ErrorResponse><Error><Type>{sender}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(body, status=status, content_type="text/xml")
    # S3: a HEAD response has no body, so botocore takes the code from the status alone.
    body = (
        ""
        if call.http_method == "HEAD"
        else (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    )
    return Response(
        body,
        status=status,
        content_type="application/xml",
        headers={"x-amz-request-id": request_id},
    )


def success_response(call: AwsCall, body: bytes) -> Response:
    """Build the response of a call that succeeded without doing anything, for a dropped call.

    SQS sends get a message id and the body's MD5, S3 PutObject gets the ETag of ``body``, and
    other calls get an empty result.
    """
    request_id = str(uuid.uuid4())
    if call.protocol == JSON_PROTOCOL:
        headers = {"x-amzn-RequestId": request_id}
        return json_response(call, _empty_json_result(call), 200, headers)
    if call.protocol == QUERY_PROTOCOL:
        action = escape(call.action)
        text = (
            f"<{action}Response><{action}Result/><ResponseMetadata><RequestId>{request_id}"
            f"</RequestId></ResponseMetadata></{action}Response>"
        )
        return Response(text, status=200, content_type="text/xml")
    headers = {"x-amz-request-id": request_id}
    if call.action == "PutObject":
        headers["ETag"] = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    status = 204 if call.action in ("DeleteObject", "DeleteBucket") else 200
    return Response(b"", status=status, headers=headers)


def _empty_json_result(call: AwsCall) -> dict[str, Any]:
    document = call.document or {}
    if call.service == "sqs" and call.action == "SendMessage":
        return _sent_message(str(document.get("MessageBody", "")))
    if call.service == "sqs" and call.action == "SendMessageBatch":
        entries = document.get("Entries") or []
        successful = [
            {"Id": entry.get("Id"), **_sent_message(str(entry.get("MessageBody", "")))}
            for entry in entries
        ]
        return {"Successful": successful, "Failed": []}
    if call.service == "dynamodb" and call.action == "BatchWriteItem":
        return {"UnprocessedItems": {}}
    return {}


def _sent_message(message_body: str) -> dict[str, str]:
    digest = hashlib.md5(message_body.encode("utf-8"), usedforsecurity=False).hexdigest()
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}


def json_response(
    call: AwsCall, document: dict[str, Any], status: int, headers: dict[str, str]
) -> Response:
    """Build a JSON-protocol response for ``document``, with the checksum headers it needs."""
    data = json.dumps(document).encode("utf-8")
    if call.service == "dynamodb":
        # botocore checks this checksum of DynamoDB responses when the header is present.
        headers = {**headers, "x-amz-crc32": str(zlib.crc32(data) & 0xFFFFFFFF)}
    return Response(data, status=status, headers=headers, content_type="application/x-amz-json-1.0")
