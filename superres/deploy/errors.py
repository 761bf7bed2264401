"""Every Tencent Cloud API error as one line: the code, SCF's message, and what to do about it.

The codes are tencentcloud-sdk-python-scf's errorcodes.py and the common API 3.0 codes
(shared/spec/web-upload-and-deploy-api.md sections 3.2 and 4.6)."""

from __future__ import annotations

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

# The runtimes to suggest when SCF refuses RUNTIME: the newest every source agrees on first (docs/deploy.md,
# "Choosing the runtime").
RUNTIMES_TO_TRY = ("Python3.12", "Python3.11", "Python3.10")

# What to do, by error code or by the code's family (the part before the dot); the longest match wins.
_HINTS = {
    "AuthFailure": "check TENCENTCLOUD_SECRETID/SECRETKEY (and TENCENTCLOUD_SESSIONTOKEN for a temporary key)",
    "AuthFailure.SignatureExpire": "this machine's clock is more than 5 minutes off; sync it (NTP)",
    "AuthFailure.UnauthorizedOperation": "the CAM user lacks this action; grant it (docs/deploy.md, prerequisites)",
    "UnauthorizedOperation": "the CAM user lacks this action; grant it (docs/deploy.md, prerequisites)",
    "InvalidAction": "this endpoint does not serve that action; check --endpoint",
    "InvalidParameterValue.Runtime": "SCF refused RUNTIME: set RUNTIME in .env to one of "
                                     f"{', '.join(RUNTIMES_TO_TRY)}, run `make layer`, and deploy again",
    "InvalidParameterValue.CompatibleRuntimes": "SCF refused RUNTIME as the layer's runtime: set RUNTIME in .env "
                                                f"to one of {', '.join(RUNTIMES_TO_TRY)}, run `make layer`, and "
                                                "deploy again",
    "MissingParameter.Runtime": "set RUNTIME in .env (e.g. Python3.12)",
    "InvalidParameterValue.ZipFile": "the code zip is not a valid zip; rebuild it (superres deploy builds it "
                                     "from serverless.yml's src)",
    "InvalidParameter.RequestTooLarge": "the code is too large for ZipFile; it goes through COS when over "
                                        "the limit, so check what serverless.yml's src includes",
    "InvalidParameterValue.Environment": "serverless.yml's variables are refused; run `superres check`",
    "InvalidParameterValue.EnvironmentExceededLimit": "serverless.yml's variables exceed 4 KB; shorten them",
    "InvalidParameterValue.Description": "use only letters, digits, spaces, commas and periods in descriptions",
    "InvalidParameter.RoleCheck": "create the execution role SCF_ROLE names (docs/deploy.md, step 4)",
    "ResourceNotFound.RoleCheck": "create the execution role SCF_ROLE names (docs/deploy.md, step 4)",
    "ResourceNotFound.FunctionName": "the function is not deployed; run `superres deploy`",
    "ResourceNotFound.Function": "the function is not deployed; run `superres deploy`",
    "ResourceNotFound.Layer": "publish the layer first (`superres deploy` does)",
    "ResourceNotFound.LayerVersion": "publish the layer first (`superres deploy` does)",
    "ResourceInUse.Cos": "another function's COS trigger already covers this bucket, event and prefix; remove it",
    "ResourceInUse.Trigger": "a trigger with this bucket exists; `superres deploy` replaces a changed one",
    "LimitExceeded": "an account quota is reached; remove unused functions, layer versions or triggers",
    "FailedOperation.FunctionStatusError": "the function is busy deploying; wait and run again",
    "FailedOperation.UpdateFunctionCode": "the function is busy deploying; wait and run again",
    "FailedOperation.FunctionNameStatusError": "the function is busy deploying; wait and run again",
    "RequestLimitExceeded": "too many requests; wait a few seconds and run again",
    "InternalError": "a fault on Tencent's side; run again, and quote the RequestId if it persists",
    "ClientNetworkError": "the API endpoint could not be reached; check the network or --endpoint",
}


def hint_for(code: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    family = code.split(".", 1)[0]
    return _HINTS.get(family, "see the SCF API error codes (cloud.tencent.com/document/api/583/17244)")


def describe_api_error(exc: TencentCloudSDKException, action: str | None = None) -> str:
    """`<Action>: <Code>: <message> (<what to do>)`, one line, never credentials."""
    code = exc.get_code() or "ClientError"
    message = " ".join(str(exc.get_message() or exc).split())
    if code == "ClientNetworkError":
        message = message.split(" caused by ", 1)[0][:200]  # urllib3's nested text says nothing more
    request_id = exc.get_request_id()
    where = f"{action}: " if action else ""
    rid = f" [RequestId {request_id}]" if request_id else ""
    return f"{where}{code}: {message}; {hint_for(code)}{rid}"
