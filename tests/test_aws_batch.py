"""GPU placement on AWS Batch, proven offline through Metaflow's own Step Functions compiler.

``step-functions create --only-json`` compiles TrainFlow exactly as a deployment would: it
uploads the code package to S3, registers one AWS Batch job definition per distinct container
and prints the state machine. Here S3, Batch, IAM, DynamoDB and Step Functions are a local moto
server on 127.0.0.1 (no AWS account is reachable or needed), with a dummy GPU job queue.

The ``moto_aws`` fixture and ``aws_env`` are reused by ``tests/test_s3_datastore.py``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATASTORE_ROOT, FLOW

REGION = "us-east-1"
BUCKET = "reclab-moto"
QUEUE = "reclab-gpu-queue"
DDB_TABLE = "reclab-sfn-foreach"
ROLE_NAME = "reclab-batch"
GPU_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/reclab-gpu:test"
# Any AWS call slower than this means the environment leaks to a real or dead endpoint.
SUBPROCESS_TIMEOUT = 240


def aws_env(endpoint: str, role_arn: str) -> dict[str, str]:
    """Return the environment that points boto3 and Metaflow at the moto server.

    Args:
        endpoint: The moto server URL, e.g. ``http://127.0.0.1:5000``.
        role_arn: An IAM role ARN that exists on the server.

    Returns:
        ``os.environ`` (this session's isolated Metaflow settings) plus dummy credentials,
        the endpoint, and the Metaflow S3 / Batch / Step Functions settings.
    """
    env = dict(os.environ)
    # Never read a real profile or ask the EC2 metadata endpoint (that can hang for minutes).
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        env.pop(name, None)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_MAX_ATTEMPTS": "2",
            "METAFLOW_S3_ENDPOINT_URL": endpoint,
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
            "METAFLOW_BATCH_JOB_QUEUE": QUEUE,
            "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": role_arn,
            "METAFLOW_SFN_IAM_ROLE": role_arn,
            "METAFLOW_EVENTS_SFN_ACCESS_IAM_ROLE": role_arn,
            "METAFLOW_SFN_DYNAMO_DB_TABLE": DDB_TABLE,
        }
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _create_stand_ins(endpoint: str) -> str:
    """Create the bucket, IAM role, GPU compute environment, job queue and DynamoDB table."""
    import boto3

    kwargs = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    boto3.client("s3", **kwargs).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **kwargs)
    trust = {"Version": "2012-10-17", "Statement": []}
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    iam.create_instance_profile(InstanceProfileName="reclab-ecs")
    ec2 = boto3.client("ec2", **kwargs)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    batch = boto3.client("batch", **kwargs)
    # Metaflow reads the queue's first compute environment to pick EC2 or Fargate.
    compute = batch.create_compute_environment(
        computeEnvironmentName="reclab-gpu",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role_arn,
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 8,
            "desiredvCpus": 0,
            "instanceTypes": ["g4dn.xlarge"],
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": "arn:aws:iam::123456789012:instance-profile/reclab-ecs",
        },
    )
    batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": compute["computeEnvironmentArn"]}
        ],
    )
    boto3.client("dynamodb", **kwargs).create_table(
        TableName=DDB_TABLE,
        KeySchema=[{"AttributeName": "pathspec", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pathspec", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return role_arn


@pytest.fixture(scope="module")
def moto_aws() -> Iterator[dict[str, str]]:
    """A moto server on a free 127.0.0.1 port with the stand-ins; yields the flow's env."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        # moto's backends live in this process, shared by every server it starts: start clean.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        yield aws_env(endpoint, _create_stand_ins(endpoint))
    finally:
        server.stop()


def run_flow_on(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run flows/train.py with ``env`` (cwd: the test datastore root), bounded in time."""
    return subprocess.run(
        [sys.executable, str(FLOW), "--no-pylint", *args],
        cwd=DATASTORE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def moto_client(service: str, env: dict[str, str]):
    """A boto3 client for the moto server described by ``env`` (from ``aws_env``)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _batch_states(node, found: dict[str, dict]) -> dict[str, dict]:
    """Collect every Batch task state of an Amazon States Language document, by step name."""
    if isinstance(node, dict):
        for name, state in (node.get("States") or {}).items():
            if isinstance(state, dict) and ":batch:submitJob" in str(state.get("Resource")):
                found[name] = state["Parameters"]
        for value in node.values():
            _batch_states(value, found)
    elif isinstance(node, list):
        for value in node:
            _batch_states(value, found)
    return found


def _requirements(parameters: dict) -> dict[str, str]:
    overrides = parameters["ContainerOverrides"]
    return {r["Type"]: r["Value"] for r in overrides.get("ResourceRequirements", [])}


@pytest.fixture(scope="module")
def compiled(moto_aws) -> dict:
    """The state machine of ``--with batch step-functions create --only-json`` (remote Config)."""
    compute = {"remote": True, "image": GPU_IMAGE, "queue": QUEUE}
    result = run_flow_on(
        moto_aws,
        "--config-value",
        "compute",
        json.dumps(compute),
        "--with",
        "batch",
        "step-functions",
        "create",
        "--only-json",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.mark.slow
def test_only_train_gpu_and_the_refit_ask_for_a_gpu(compiled) -> None:
    states = _batch_states(compiled, {})
    steps = {
        "start",
        "get_dataset",
        "build_workflow",
        "plan_candidates",
        "cpu_fanout",
        "train_cpu",
        "collect_cpu",
        "gpu_fanout",
        "train_gpu",
        "collect_gpu",
        "join",
        "refit_winner",
        "batch_score",
        "end",
    }
    assert set(states) == steps
    gpus = {name: _requirements(params).get("GPU") for name, params in states.items()}
    # The refit trains the winner's family, which may be a deep one.
    assert gpus.pop("train_gpu") == "1" and gpus.pop("refit_winner") == "1"
    assert set(gpus.values()) == {None}, gpus
    assert _requirements(states["train_gpu"])["MEMORY"] == "14336"
    assert all(params["JobQueue"] == QUEUE for params in states.values())


@pytest.mark.slow
def test_train_gpu_job_definition_uses_the_configured_image(compiled, moto_aws) -> None:
    states = _batch_states(compiled, {})
    batch = moto_client("batch", moto_aws)
    images = {
        d["jobDefinitionArn"]: d["containerProperties"]["image"]
        for d in batch.describe_job_definitions()["jobDefinitions"]
    }
    gpu_steps = ("train_gpu", "refit_winner")
    assert {images[states[name]["JobDefinition"]] for name in gpu_steps} == {GPU_IMAGE}
    others = {images[p["JobDefinition"]] for name, p in states.items() if name not in gpu_steps}
    assert GPU_IMAGE not in others


@pytest.mark.slow
def test_uploaded_code_package_holds_the_flow_tree_and_frozen_config(compiled, moto_aws) -> None:
    env = compiled["States"]["start"]["Parameters"]["ContainerOverrides"]["Environment"]
    url = next(e["Value"] for e in env if e["Name"] == "METAFLOW_CODE_URL")
    bucket, key = url.removeprefix("s3://").split("/", 1)
    s3 = moto_client("s3", moto_aws)
    blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = set(tar.getnames())
        config = json.loads(tar.extractfile(".mf_meta/CONFIG").read())
    repo = Path(FLOW).resolve().parents[1]
    needed = {
        str(path.relative_to(repo))
        for folder in ("custom_decorators", "workflow_builder", "data", "reclab", "sql")
        for path in (repo / folder).rglob("*")
        if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts
    }
    assert any(name.startswith("sql/") and name.endswith(".sql") for name in needed)
    assert "train.py" in names
    assert not needed - names, sorted(needed - names)
    # The Config is frozen at deploy time and shipped to every remote task.
    assert config["user_configs"]["compute"][0]["remote"] is True


@pytest.mark.slow
def test_without_the_config_resources_alone_still_put_the_gpu_on_train_gpu(moto_aws) -> None:
    result = run_flow_on(moto_aws, "--with", "batch", "step-functions", "create", "--only-json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    states = _batch_states(json.loads(result.stdout[result.stdout.index("{") :]), {})
    gpus = {name: _requirements(params).get("GPU") for name, params in states.items()}
    assert gpus.pop("train_gpu") == "1" and gpus.pop("refit_winner") == "1"
    assert set(gpus.values()) == {None}


@pytest.mark.slow
def test_remote_config_on_a_local_datastore_fails_fast() -> None:
    """With remote: true the GPU step really carries @batch, which refuses a local datastore."""
    env = dict(os.environ)
    result = subprocess.run(
        [
            sys.executable,
            str(FLOW),
            "--no-pylint",
            "--config-value",
            "compute",
            json.dumps({"remote": True}),
            "run",
        ],
        cwd=DATASTORE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode != 0
    assert "requires --datastore=s3" in result.stdout + result.stderr


def test_batch_attributes_keep_only_what_is_set_and_refuse_bad_values() -> None:
    from custom_decorators import RemoteComputeError, batch_attributes

    assert batch_attributes() == {"gpu": 1}
    assert batch_attributes(image="img", queue="q", memory=8192) == {
        "gpu": 1,
        "image": "img",
        "queue": "q",
        "memory": 8192,
    }
    for bad in ({"gpu": 0}, {"memory": "16G"}, {"cpu": True}, {"image": 3}):
        with pytest.raises(RemoteComputeError):
            batch_attributes(**bad)


@pytest.mark.slow
def test_remote_train_gpu_retries_once_and_others_never(compiled) -> None:
    """@gpu_on_batch adds @retry(times=1) to the remote GPU steps only (a lost instance).

    Both training steps carry @catch, whose 3 fallback attempts record a task that died
    outside the code (killed, out of memory) as a failed candidate; the refit carries it too.
    """
    states = _batch_states(compiled, {})
    attempts = {
        name: params.get("RetryStrategy", {}).get("Attempts") for name, params in states.items()
    }
    assert attempts.pop("train_cpu") == 1 + 3
    assert attempts.pop("train_gpu") == 1 + 1 + 3
    assert attempts.pop("refit_winner") == 1 + 1 + 3
    assert set(attempts.values()) == {1}, attempts


@pytest.fixture(scope="module")
def production_deployment(moto_aws) -> dict:
    """A real ``--production step-functions create`` (no --only-json) into the moto server.

    ``--only-json`` prints the state machine only: the @schedule cron lives in the AWS
    EventBridge rule that ``create`` writes after pushing the state machine. So here Metaflow's
    own CLI deploys both into moto, and the test reads them back with boto3: the rule (schedule
    and target) and the state machine (name and definition) as AWS would hold them.
    """
    compute = {"remote": True, "image": GPU_IMAGE, "queue": QUEUE}
    result = run_flow_on(
        moto_aws,
        "--config-value",
        "compute",
        json.dumps(compute),
        "--production",
        "--with",
        "batch",
        "step-functions",
        "create",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    machines = moto_client("stepfunctions", moto_aws).list_state_machines()["stateMachines"]
    events = moto_client("events", moto_aws)
    return {
        "output": result.stdout + result.stderr,
        "machines": {m["name"]: m["stateMachineArn"] for m in machines},
        "rules": {r["Name"]: r for r in events.list_rules()["Rules"]},
        "targets": {
            r["Name"]: events.list_targets_by_rule(Rule=r["Name"])["Targets"]
            for r in events.list_rules()["Rules"]
        },
    }


@pytest.mark.slow
def test_production_deployment_is_scheduled_daily_in_the_project_namespace_with_a_gpu_step(
    production_deployment, moto_aws
) -> None:
    """@project + --production name the deployment reclab.prod.TrainFlow; @schedule(daily=True)
    is an EventBridge rule at 00:00 UTC that starts it; train_gpu (and the refit of the
    winner, which may be a deep family) alone ask for a GPU."""
    name = "reclab.prod.TrainFlow"
    assert set(production_deployment["machines"]) == {name}
    assert production_deployment["rules"][name]["ScheduleExpression"] == "cron(0 0 * * ? *)"
    assert production_deployment["rules"][name]["State"] == "ENABLED"
    (target,) = production_deployment["targets"][name]
    assert target["Arn"] == production_deployment["machines"][name]
    assert "Project: reclab, Branch: prod" in production_deployment["output"]

    definition = json.loads(
        moto_client("stepfunctions", moto_aws).describe_state_machine(
            stateMachineArn=production_deployment["machines"][name]
        )["definition"]
    )
    states = _batch_states(definition, {})
    gpus = {step: _requirements(params).get("GPU") for step, params in states.items()}
    assert gpus.pop("train_gpu") == "1" and gpus.pop("refit_winner") == "1"
    assert set(gpus.values()) == {None}, gpus
    for step, params in states.items():
        overrides = params["ContainerOverrides"]
        env = {e["Name"]: e.get("Value") for e in overrides["Environment"]}
        assert env["SFN_STATE_MACHINE"] == name, step
        # Every task runs on the prod branch, so its run carries project_branch:prod.
        assert " --production " in overrides["Command"][-1], step


@pytest.mark.slow
def test_user_deployment_is_named_after_the_user_branch(compiled) -> None:
    """Without --production or --branch, @project deploys into the user's own branch."""
    from metaflow.util import get_username

    name = f"reclab.user.{get_username()}.TrainFlow"
    for step, params in _batch_states(compiled, {}).items():
        overrides = params["ContainerOverrides"]
        env = {e["Name"]: e.get("Value") for e in overrides["Environment"]}
        assert env["SFN_STATE_MACHINE"] == name, step
        assert "--production" not in overrides["Command"][-1], step
