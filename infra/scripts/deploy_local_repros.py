"""The smallest reproductions of what the local endpoint (MiniStack 1.5.33) cannot do of
template.yaml (infra/DEPLOY-LOCAL.md). Each prints what AWS does and what the endpoint did, and
whether the gap is still there; run against a running endpoint:

  infra/scripts/aws-emulator.sh start && eval "$(infra/scripts/aws-emulator.sh env)"
  AWS_EMULATOR=ministack-sam infra/scripts/aws-emulator.sh install   # venv with boto3 + SAM translator
  .aws-emulator/venv-ministack-sam/bin/python infra/scripts/deploy_local_repros.py [NAME...]

Exits 0 whatever it finds: these document the endpoint, they do not test Reelay.
"""

import io
import json
import sys
import time
import uuid
import zipfile

import boto3
from botocore.exceptions import ClientError

RUN = uuid.uuid4().hex[:6]


def stack(name, template, params=None):
    """Creates a stack, waits, returns (status, reason of the first failed resource)."""
    cf = boto3.client("cloudformation")
    cf.create_stack(StackName=name, TemplateBody=json.dumps(template),
                    Parameters=params or [], Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    for _ in range(120):
        s = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not s["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    reasons = [e.get("ResourceStatusReason") for e in cf.describe_stack_events(StackName=name)["StackEvents"]
               if e["ResourceStatus"].endswith("FAILED")]
    return s["StackStatus"], (reasons[-1] if reasons else s.get("StackStatusReason"))


def report(name, aws, got, gap):
    print(f"{name}\n  AWS:      {aws}\n  endpoint: {got}\n  => {'GAP' if gap else 'works now'}\n")


def metric_math_alarm():
    status, reason = stack(f"repro-alarm-{RUN}", {"Resources": {"A": {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {"EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
                       "Metrics": [{"Id": "t", "Expression": "SUM(METRICS())", "ReturnData": True},
                                   {"Id": "e", "ReturnData": False, "MetricStat": {"Stat": "Sum", "Period": 300,
                                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"}}}]}}}})
    report("metric_math_alarm: AWS::CloudWatch::Alarm with Metrics (FunctionErrorsAlarm)",
           "CREATE_COMPLETE", f"{status}: {reason}", status != "CREATE_COMPLETE")


def http_api_body():
    status, _ = stack(f"repro-body-{RUN}", {"Resources": {"Api": {
        "Type": "AWS::ApiGatewayV2::Api",
        "Properties": {"Body": {"openapi": "3.0.1", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
            "x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET",
                                                "uri": "http://127.0.0.1:9/x", "payloadFormatVersion": "1.0"}}}}}}}}})
    cf, apigw = boto3.client("cloudformation"), boto3.client("apigatewayv2")
    api = [r["PhysicalResourceId"] for r in cf.list_stack_resources(StackName=f"repro-body-{RUN}")
           ["StackResourceSummaries"] if r["LogicalResourceId"] == "Api"][0]
    routes = [r["RouteKey"] for r in apigw.get_routes(ApiId=api)["Items"]]
    report("http_api_body: AWS::ApiGatewayV2::Api Body (OpenAPI; where SAM puts every HttpApi route)",
           "one route 'GET /x'", f"{status}, routes {routes}", routes != ["GET /x"])


def python_function(code, name):
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", code)
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=role,
                        Code={"ZipFile": buf.getvalue()}, LoggingConfig={"LogFormat": "JSON"})
    return lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read().decode()


def emf_extraction():
    name = f"repro-emf-{RUN}"
    python_function(
        "import json, time\n"
        "def handler(e, c):\n"
        "    print(json.dumps({'_aws': {'Timestamp': int(time.time()*1000), 'CloudWatchMetrics': [{\n"
        "        'Namespace': 'ReproEmf', 'Dimensions': [['Stage']], 'Metrics': [{'Name': 'Hits', 'Unit': 'Count'}]}]},\n"
        "        'Stage': 'local', 'Hits': 1}))\n"
        "    return 'ok'\n", name)
    time.sleep(2)
    lines = [e["message"] for e in boto3.client("logs").filter_log_events(
        logGroupName=f"/aws/lambda/{name}")["events"] if '"_aws"' in e["message"]]
    metrics = boto3.client("cloudwatch").list_metrics(Namespace="ReproEmf")["Metrics"]
    report("emf_extraction: a Lambda function's embedded-metric-format log line becomes a metric",
           "metric ReproEmf/Hits (Stage=local)",
           f"{len(lines)} EMF line(s) in the log group, {len(metrics)} metric(s) in ReproEmf", not metrics)


def logging_config_json():
    name = f"repro-logfmt-{RUN}"
    out = python_function(
        "import os\n"
        "def handler(e, c):\n"
        "    return os.environ.get('AWS_LAMBDA_LOG_FORMAT', 'unset')\n", name)
    report("logging_config_json: LoggingConfig.LogFormat JSON reaches the runtime (AWS_LAMBDA_LOG_FORMAT)",
           "\"JSON\"", out, out != '"JSON"')


def lambda_metrics_for_event_sources():
    name = f"repro-esm-{RUN}"
    python_function("def handler(e, c):\n    return 'ok'\n", name)
    sqs, lam, cw = boto3.client("sqs"), boto3.client("lambda"), boto3.client("cloudwatch")
    url = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    invoked = 0
    for _ in range(40):
        time.sleep(0.5)
        invoked = sum(e["message"].startswith("START") for e in boto3.client("logs").filter_log_events(
            logGroupName=f"/aws/lambda/{name}")["events"])
        if invoked >= 2:  # the create's own invoke in python_function, then the ESM's
            break

    def datapoints():
        return sum(p["Sum"] for p in cw.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName="Invocations",
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=time.time() - 600, EndTime=time.time() + 60, Period=60, Statistics=["Sum"])["Datapoints"])

    report("lambda_metrics_for_event_sources: AWS/Lambda Invocations counts invocations by an SQS "
           "event source mapping (and API Gateway, EventBridge)",
           f"Invocations = {invoked} (one Invoke API call, {invoked - 1} by the mapping)",
           f"{invoked} invocations logged, Invocations metric sum = {datapoints():g}",
           datapoints() < invoked)


def secret_ref_is_arn():
    name = f"repro-secret-{RUN}"
    stack(name, {"Resources": {"S": {"Type": "AWS::SecretsManager::Secret",
                                      "Properties": {"Name": f"repro/{RUN}", "SecretString": "x"}}},
                 "Outputs": {"Ref": {"Value": {"Ref": "S"}}}})
    out = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["Outputs"][0]["OutputValue"]
    report("secret_ref_is_arn: Ref of an AWS::SecretsManager::Secret (the role policies' Resource for "
           "the stage secrets)", f"the secret's ARN (arn:aws:secretsmanager:...:secret:repro/{RUN}-XXXXXX)",
           out, not out.startswith("arn:"))


def kms_key_policy_grants_role():
    """Needs an endpoint started with AUTH=true (IAM enforced); without it everything is allowed."""
    iam, kms = boto3.client("iam"), boto3.client("kms")
    role = iam.create_role(RoleName=f"repro-kms-{RUN}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": "arn:aws:iam::000000000000:root"}}]}))["Role"]["Arn"]
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Role", "Effect": "Allow", "Principal": {"AWS": role},
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "reelay-tiktok-token"}}}]}))["KeyMetadata"]["Arn"]
    c = boto3.client("sts").assume_role(RoleArn=role, RoleSessionName="repro")["Credentials"]
    as_role = boto3.client("kms", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                           aws_session_token=c["SessionToken"])
    try:
        as_role.generate_data_key(KeyId=key, KeySpec="AES_256",
                                  EncryptionContext={"purpose": "reelay-tiktok-token", "tenant": "t"})
        got, gap = "allowed (if the endpoint was started without AUTH=true, IAM is not enforced at all)", False
    except ClientError as exc:
        got, gap = exc.response["Error"]["Message"], True
    report("kms_key_policy_grants_role: a key policy statement naming a role, with the condition "
           "kms:EncryptionContext:purpose, lets that role use the key when the context matches "
           "(TokenKey's TokenRoles statement; AUTH=true endpoints only)", "allowed", got, gap)


REPROS = {f.__name__: f for f in (metric_math_alarm, http_api_body, emf_extraction, logging_config_json,
                                  lambda_metrics_for_event_sources, secret_ref_is_arn, kms_key_policy_grants_role)}

if __name__ == "__main__":
    for name in sys.argv[1:] or REPROS:
        try:
            REPROS[name]()
        except ClientError as exc:
            report(name, "(see DEPLOY-LOCAL.md)", f"error {exc}", True)
