"""Test handlers for the local Lambda service, one per behaviour under test."""

import os
import signal
import time

import boto3
import layer_helper

IMPORTS = layer_helper.count_import()
S3 = boto3.client("s3")


class SliceRejectedError(Exception):
    """Raised by fail() so that tests see a project-style error type in Step Functions."""


def echo(event, context):
    return {
        "event": event,
        "imports": IMPORTS,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "remaining_ms_positive": context.get_remaining_time_in_millis() > 0,
            "request_id_length": len(context.aws_request_id),
        },
        "environment": {
            name: os.environ.get(name)
            for name in (
                "AWS_ENDPOINT_URL",
                "AWS_REGION",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "TABLE_NAME",
                "GREETING",
            )
        },
    }


def fail(event, context):
    raise SliceRejectedError(f"slice {event.get('slice')} is rejected")


def sleep(event, context):
    time.sleep(event["seconds"])
    return {"slept": event["seconds"]}


def exit_process(event, context):
    if event.get("signal"):
        os.kill(os.getpid(), signal.SIGKILL)
    if "status" in event:
        os._exit(event["status"])
    return {"pid": os.getpid()}


def counted(event, context):
    S3.list_buckets()
    return {"imports": IMPORTS, "pid": os.getpid()}
