"""Helpers of infra/scripts/deploy-local.sh (run with the MiniStack venv's Python, which has
boto3 and aws-sam-translator). Each subcommand does one step the shell script cannot do in
shell; none of them changes what the stack itself deployed, and each prints what it did.

  template SRC OUT RESOURCE...   SRC (sam build's template) as JSON without RESOURCE... (the ones
                                 MiniStack refuses, listed in infra/DEPLOY-LOCAL.md)
  routes STACK                   the HTTP API's routes and integrations, from the OpenAPI `Body`
                                 SAM generated (MiniStack's AWS::ApiGatewayV2::Api ignores Body)
  proxy PORT API_ID EMU_PORT     the stage's stable public URL (the PublicBaseUrl a custom domain
                                 would be): 127.0.0.1:PORT -> the API's execute-api host
  relay HOST PORT                HOST:PORT -> 127.0.0.1:PORT over TCP (--docker: the endpoint on the
                                 engine's bridge, where MiniStack tells containers to find it)
  outputs STACK                  the stack's outputs as shell `export` lines
  check STACK SINCE_MS [docker]  after the demo: what the deployed stack's schedule, event source
                                 mappings, logs, metrics and dashboard show; with `docker`, that every
                                 function ran under the RIE in a container; exits 1 on a failed check
"""

import http.client
import http.server
import json
import pathlib
import re
import shlex
import socketserver
import sys
import time

import boto3


def cmd_template(src, out, *drop):
    from samtranslator.yaml_helper import yaml_parse

    with open(src) as f:
        template = yaml_parse(f.read())

    def refers(node, name):
        if isinstance(node, dict):
            if node.get("Ref") == name:
                return True
            att = node.get("Fn::GetAtt")
            if att and (att[0] if isinstance(att, list) else att.split(".")[0]) == name:
                return True
            return any(refers(v, name) for v in node.values())
        if isinstance(node, list):
            return any(refers(v, name) for v in node)
        return False

    for name in drop:
        if template["Resources"].pop(name, None) is None:
            sys.exit(f"template: no resource {name} to leave out")
        for section in ("Resources", "Outputs"):
            for key, value in template.get(section, {}).items():
                if refers(value, name):
                    sys.exit(f"template: {section}.{key} refers to {name}; cannot leave it out")
        print(f"left out {name} (MiniStack cannot provision it; see infra/DEPLOY-LOCAL.md)")
    with open(out, "w") as f:
        json.dump(template, f, indent=1)


def stack_resources(cf, stack):
    pages = cf.get_paginator("list_stack_resources").paginate(StackName=stack)
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for page in pages
        for r in page["StackResourceSummaries"]
    }


def cmd_routes(stack):
    cf, apigw, lam = boto3.client("cloudformation"), boto3.client("apigatewayv2"), boto3.client("lambda")
    template = cf.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
    if isinstance(template, str):
        template = json.loads(template)
    resources = stack_resources(cf, stack)
    api = resources["HttpApi"]
    existing = {r["RouteKey"] for r in apigw.get_routes(ApiId=api)["Items"]}
    body = template["Resources"]["HttpApi"]["Properties"]["Body"]
    integrations, created = {}, 0
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            x = operation["x-amazon-apigateway-integration"]
            uri = x["uri"]["Fn::Sub"]
            # arn:...:functions/${<LogicalId>.Arn}/invocations, as SAM writes it.
            function = re.search(r"\$\{(\w+)\.Arn\}", uri).group(1)
            route_key = f"{method.upper()} {path}"
            if route_key in existing:
                continue
            if function not in integrations:
                arn = lam.get_function(FunctionName=resources[function])["Configuration"]["FunctionArn"]
                integrations[function] = apigw.create_integration(
                    ApiId=api,
                    IntegrationType="AWS_PROXY",
                    IntegrationUri=arn,
                    IntegrationMethod="POST",
                    PayloadFormatVersion=x.get("payloadFormatVersion", "2.0"),
                )["IntegrationId"]
            apigw.create_route(ApiId=api, RouteKey=route_key, Target=f"integrations/{integrations[function]}")
            created += 1
    print(f"HTTP API {api}: {created} routes created from the template's OpenAPI body "
          f"({len(existing)} already there), {len(integrations)} Lambda integrations")


def cmd_proxy(port, api_id, emu_port):
    host = f"{api_id}.execute-api.localhost:{emu_port}"
    hop = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop | {"host"}}
            headers["Host"] = host
            conn = http.client.HTTPConnection("127.0.0.1", int(emu_port), timeout=330)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                data = json.dumps({"message": f"proxy: {exc}"}).encode()
                self.send_response(502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            finally:
                conn.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in hop | {"content-length", "date", "server"}:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = relay

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", int(port)), Handler)
    print(f"http://127.0.0.1:{port} -> {host}", flush=True)
    server.serve_forever()


def cmd_relay(host, port):
    import asyncio

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    async def main():
        server = await asyncio.start_server(handle, host, int(port))
        print(f"{host}:{port} -> 127.0.0.1:{port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def cmd_outputs(stack):
    cf = boto3.client("cloudformation")
    outputs = cf.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for o in outputs:
        print(f"export STACK_{o['OutputKey']}={shlex.quote(o['OutputValue'])}")


def log_events(logs, group, since_ms):
    events, kwargs = [], {"logGroupName": group, "startTime": since_ms}
    while True:
        page = logs.filter_log_events(**kwargs)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events
        kwargs["nextToken"] = token


def cmd_check(stack, since_ms, mode=""):
    since_ms = int(since_ms)
    cf, lam, logs, cw = (boto3.client(s) for s in ("cloudformation", "lambda", "logs", "cloudwatch"))
    resources = stack_resources(cf, stack)
    failures = []

    def check(ok, what):
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
        if not ok:
            failures.append(what)

    functions = {
        logical: physical
        for logical, physical in resources.items()
        if logical.endswith("Function") and not logical.endswith("Permission")
    }
    print("==> what the deployed stack did (CloudWatch Logs and metrics of the local endpoint)")
    # The rule fires about a minute after it is created, then every minute: wait for one tick.
    reconciler_group = f"/aws/lambda/{functions['ReconcilerFunction']}"
    while (not any(e["message"].startswith("START RequestId:") for e in log_events(logs, reconciler_group, since_ms))
           and time.time() * 1000 < since_ms + 150_000):
        time.sleep(5)
    emf, invocations, rie = {}, {}, {}
    for logical, name in sorted(functions.items()):
        events = log_events(logs, f"/aws/lambda/{name}", since_ms)
        starts = [e for e in events if e["message"].startswith("START RequestId:")]
        invocations[logical] = len(starts)
        # The Runtime Interface Emulator's own lines: the bootstrap ran in a container under it.
        rie[logical] = sum("(rapid) INVOKE START" in e["message"] for e in events)
        for e in events:
            msg = e["message"].strip()
            if not (msg.startswith("{") and '"_aws"' in msg):
                continue
            try:
                doc = json.loads(msg)
            except ValueError:
                continue
            for directive in doc["_aws"].get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    key = (directive.get("Namespace"), metric["Name"])
                    emf[key] = emf.get(key, 0) + int(doc.get(metric["Name"], 0))
        print(f"      {name:<32} {len(starts):>4} invocations logged")
    # The schedule: every reconciler run of the demo came from the EventBridge rule (nothing
    # else invokes it here), at about one a minute.
    check(invocations.get("ReconcilerFunction", 0) >= 1,
          f"EventBridge rule rate(1 minute) invoked the reconciler {invocations.get('ReconcilerFunction', 0)} times")
    for fn, queue in (("RenderSubmitterFunction", "RenderQueue"), ("PublisherFunction", "PublishQueue")):
        check(invocations.get(fn, 0) >= 1,
              f"SQS event source mapping {queue} -> {functions[fn]} invoked it {invocations.get(fn, 0)} times")
    # The table's change stream (new and old images, filtered to audit inserts and account
    # writes) feeds the webhooks-to-the-client function: every job's moves invoke it.
    check(invocations.get("ClientWebhooksFunction", 0) >= 1,
          f"DynamoDB stream mapping Table -> {functions['ClientWebhooksFunction']} invoked it "
          f"{invocations.get('ClientWebhooksFunction', 0)} times")
    for fn in ("IngestApiFunction", "SsembleWebhookFunction", "TikTokWebhookFunction"):
        check(invocations.get(fn, 0) >= 1,
              f"HTTP API invoked {functions[fn]} {invocations.get(fn, 0)} times")

    if mode == "docker":
        for fn, n in sorted(rie.items()):
            check(n >= 1, f"{functions[fn]} ran in a container under the RIE ({n} '(rapid) INVOKE START' lines)")
    print("      embedded-metric (EMF) lines in the functions' logs, summed:")
    for (ns, name), total in sorted(emf.items()):
        print(f"        {ns}/{name}: {total}")
    for name, where in (("ReconcilerRun", "reconciler"), ("PublishAccepted", "publisher")):
        what = f"EMF Reelay/{name} in the {where}'s log"
        if mode == "docker" and emf.get(("Reelay", name), 0) == 0:
            # MiniStack's docker executor reads a container's log right after the answer, so a
            # function's last lines can be lost (DEPLOY-LOCAL.md, gap 8): reported, not judged.
            print(f"  [lost] {what}: none captured (the docker executor's log capture, gap 8)")
            continue
        check(emf.get(("Reelay", name), 0) >= 1, what)
    extracted = cw.list_metrics(Namespace="Reelay")["Metrics"]
    print(f"      CloudWatch metrics in namespace Reelay (extracted from EMF): {len(extracted)}"
          " (MiniStack does not extract EMF; see infra/DEPLOY-LOCAL.md)")

    names = set()
    for page in cw.get_paginator("list_metrics").paginate(Namespace="AWS/Lambda", MetricName="Invocations"):
        names |= {d["Value"] for m in page["Metrics"] for d in m["Dimensions"] if d["Name"] == "FunctionName"}
    # Not a check: MiniStack emits AWS/Lambda metrics only for the Invoke API, never for an
    # invocation by an event source mapping, API Gateway or EventBridge (DEPLOY-LOCAL.md).
    print(f"      AWS/Lambda Invocations metrics (the endpoint's own): "
          f"{len(set(functions.values()) & names)} of {len(functions)} functions"
          " (MiniStack emits them only for the Invoke API; see infra/DEPLOY-LOCAL.md)")

    dashboard_name = resources["Dashboard"]
    body = json.loads(cw.get_dashboard(DashboardName=dashboard_name)["DashboardBody"])
    drawn = [m for w in body.get("widgets", []) for m in w.get("properties", {}).get("metrics", [])]
    text = json.dumps(body)
    # As many widgets as template.yaml's dashboard draws (each is one `{"type": "metric"` there).
    template_text = (pathlib.Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    widgets_wanted = template_text.count('{"type": "metric"')
    check(len(body.get("widgets", [])) == widgets_wanted and widgets_wanted > 0
          and all(n in text for n in functions.values())
          and resources["HttpApi"] in text,
          f"dashboard {dashboard_name}: {len(body.get('widgets', []))} widgets, {len(drawn)} metric rows, "
          "naming the deployed functions, queues and API")
    for w in body.get("widgets", []):
        print(f"        widget: {w['properties'].get('title')}")

    if failures:
        print(f"==> {len(failures)} check(s) failed")
        sys.exit(1)
    print("==> every check passed")


COMMANDS = {
    "template": cmd_template,
    "routes": cmd_routes,
    "proxy": cmd_proxy,
    "relay": cmd_relay,
    "outputs": cmd_outputs,
    "check": cmd_check,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
