"""The SSE deployment profiles offline: template.yaml resolved for each (exactly its resources, the
SAM transform), the rule that viewers never take the task Lambdas' concurrency, and `dagcast deploy
--sse-profile` (its flags, usage errors, the parameters it passes). cfn-lint of both profiles runs
in tests/functional/test_packaging.py (a subprocess)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from dagcast.deploy import sse_profiles
from dagcast.deploy.deployer import Deployer
from dagcast.deploy.sse_profiles import MANAGED_INSTANCES, ON_DEMAND, SseProfile
from tests.support.cloudformation import ROOT, Stack, template

ON_DEMAND_STAGE = SseProfile()
MANAGED_STAGE = SseProfile(MANAGED_INSTANCES, subnets="subnet-0a,subnet-0b", security_groups="sg-0a")
MANAGED_WITH_ENDPOINTS = SseProfile(
    MANAGED_INSTANCES,
    subnets="subnet-0a,subnet-0b",
    security_groups="sg-0a,sg-0b",
    vpc_endpoints="create",
    vpc_id="vpc-0a",
    route_tables="rtb-0a,rtb-0b",
)

SSE_SHARED = {"SseLogGroup", "SseErrorsAlarm", "SseThrottlesAlarm"}
# What each profile's stack holds of the SSE path, and nothing else of it.
EXPECTED = {
    "on-demand": SSE_SHARED
    | {"SseFunction", "SseConcurrencyAlarm"},  # the alarm measures its reserved concurrency
    "managed-instances": SSE_SHARED
    | {"SseManagedFunction", "SseCapacityProvider", "SseCapacityProviderOperatorRole"},
    "managed-instances+endpoints": SSE_SHARED
    | {
        "SseManagedFunction",
        "SseCapacityProvider",
        "SseCapacityProviderOperatorRole",
        "SseDynamoDbEndpoint",
        "SseSecretsEndpointSecurityGroup",
        "SseSecretsManagerEndpoint",
    },
}
STAGES = {
    "on-demand": ON_DEMAND_STAGE,
    "managed-instances": MANAGED_STAGE,
    "managed-instances+endpoints": MANAGED_WITH_ENDPOINTS,
}


def stack(profile: SseProfile, tpl: dict[str, Any] | None = None) -> Stack:
    return Stack("dev", "eu-west-1", "123456789012", tpl=tpl, **profile.parameters())


def functions(s: Stack) -> list[str]:
    return [
        n
        for n, kind in s.resources().items()
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    ]


def viewer_cap_problems(s: Stack) -> list[str]:
    """Why viewers could take the concurrency the task Lambdas need, in this stack; empty when they
    cannot. Every function template.yaml makes serves viewers (the task Lambdas are Chalice's): each
    must either have reserved concurrency (a capped share set apart from the region's pool) or run
    on a capacity provider (instances of its own, capped by the provider's vCPUs)."""
    found = []
    for name in functions(s):
        props = s.props(name)
        reserved = props.get("ReservedConcurrentExecutions")
        if "CapacityProviderConfig" in props:
            provider = s.props(props["CapacityProviderConfig"]["Arn"]["Fn::GetAtt"][0])
            if int(s.text(provider["CapacityProviderScalingConfig"]["MaxVCpuCount"])) < 2:
                found.append(f"{name}: its capacity provider has no vCPU ceiling")
        elif reserved is None:
            found.append(f"{name} has no reserved concurrency: its viewers draw on the task Lambdas' pool")
        elif int(s.text(reserved)) < 1:
            found.append(f"{name} has reserved concurrency {s.text(reserved)}: no viewer could stream")
    return found


@pytest.mark.parametrize("profile", sorted(STAGES))
def test_each_profile_holds_exactly_its_sse_resources(profile: str):
    s = stack(STAGES[profile])
    sse = {n for n in s.resources() if n.startswith("Sse")}
    assert sse == EXPECTED[profile]
    assert len(functions(s)) == 1  # one SSE function at a time, whichever the profile
    url = s.output("EventsUrl")  # the URL the API hands out is the profile's function's
    assert url == s.getatt(f"{functions(s)[0]}Url", "FunctionUrl")
    assert s.output("SseFunctionName") == s.ref(functions(s)[0])
    for alarm in ("SseErrorsAlarm", "SseThrottlesAlarm"):
        [dimension] = s.props(alarm)["Dimensions"]
        assert s.text(dimension["Value"]) == s.ref(functions(s)[0])


@pytest.mark.parametrize("profile", sorted(STAGES))
def test_viewers_cannot_take_the_task_lambdas_concurrency_in_any_profile(profile: str):
    assert viewer_cap_problems(stack(STAGES[profile])) == []


def test_the_on_demand_sse_function_has_the_reserved_concurrency_deploy_passes():
    props = stack(ON_DEMAND_STAGE).props("SseFunction")
    assert stack(ON_DEMAND_STAGE).text(props["ReservedConcurrentExecutions"]) == "100"
    assert stack(SseProfile(reserved_concurrency=7)).text(props["ReservedConcurrentExecutions"]) == "7"
    spec = template()["Parameters"]["SseReservedConcurrency"]
    assert spec["MinValue"] >= 1 and "task Lambdas" in spec["Description"]
    # AWS keeps 100 unreserved: the default must fit an account at the default limit of 1,000
    assert spec["Default"] + 100 <= 1000


@pytest.mark.parametrize("change", ["removed", "zero"])
def test_an_on_demand_sse_function_without_reserved_concurrency_is_caught(change: str):
    """The check above fails the day the template's SSE function loses its cap."""
    tpl = copy.deepcopy(template())
    props = tpl["Resources"]["SseFunction"]["Properties"]
    if change == "removed":
        del props["ReservedConcurrentExecutions"]
    else:
        props["ReservedConcurrentExecutions"] = 0
    [problem] = viewer_cap_problems(stack(ON_DEMAND_STAGE, tpl))
    assert problem.startswith("SseFunction")


def test_the_managed_instances_function_runs_on_the_capacity_provider():
    s = stack(MANAGED_STAGE)
    fn = s.props("SseManagedFunction")
    assert fn["Runtime"] == "python3.13" and fn["MemorySize"] >= 2048  # what Managed Instances require
    config = fn["CapacityProviderConfig"]
    assert s.text(config["Arn"]) == s.getatt("SseCapacityProvider", "Arn")
    assert s.text(config["PerExecutionEnvironmentMaxConcurrency"]) == "64"
    assert fn["MemorySize"] / 1024 / config["ExecutionEnvironmentMemoryGiBPerVCpu"] == 1  # one vCPU
    assert fn["PublishToLatestPublished"] is True  # the URL runs $LATEST.PUBLISHED: republish each update
    provider = s.props("SseCapacityProvider")
    assert s(provider["VpcConfig"]) == {
        "SubnetIds": ["subnet-0a", "subnet-0b"],
        "SecurityGroupIds": ["sg-0a"],
    }
    assert provider["InstanceRequirements"]["Architectures"] == ["x86_64"]  # the adapter layer's, the wheels'
    assert s.text(provider["PermissionsConfig"]["CapacityProviderOperatorRoleArn"]) == s.getatt(
        "SseCapacityProviderOperatorRole", "Arn"
    )
    role = s.props("SseCapacityProviderOperatorRole")
    assert [s.text(a) for a in role["ManagedPolicyArns"]] == [
        "arn:aws:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"
    ]
    assert s.text(provider["CapacityProviderScalingConfig"]["MaxVCpuCount"]) == "16"


def test_the_endpoints_the_stack_makes_reach_dynamodb_and_secrets_manager_from_the_instances():
    s = stack(MANAGED_WITH_ENDPOINTS)
    gateway = s(s.props("SseDynamoDbEndpoint"))
    assert (
        gateway["VpcEndpointType"] == "Gateway"
        and gateway["ServiceName"] == "com.amazonaws.eu-west-1.dynamodb"
    )
    assert gateway["VpcId"] == "vpc-0a" and gateway["RouteTableIds"] == ["rtb-0a", "rtb-0b"]
    secrets = s(s.props("SseSecretsManagerEndpoint"))
    assert secrets["ServiceName"] == "com.amazonaws.eu-west-1.secretsmanager" and secrets["PrivateDnsEnabled"]
    assert secrets["SubnetIds"] == ["subnet-0a", "subnet-0b"]
    assert secrets["SecurityGroupIds"] == [s.ref("SseSecretsEndpointSecurityGroup")]
    [ingress] = s(s.props("SseSecretsEndpointSecurityGroup"))["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"], ingress["SourceSecurityGroupId"]) == (443, 443, "sg-0a")


def test_both_sse_functions_are_one_function_but_for_what_the_profile_changes():
    """Same code, settings, role, layer, logs and URL: a fix to one cannot miss the other."""
    resources = template()["Resources"]
    on_demand, managed = (dict(resources[n]["Properties"]) for n in ("SseFunction", "SseManagedFunction"))
    assert on_demand.pop("ReservedConcurrentExecutions") == {"Ref": "SseReservedConcurrency"}
    for key in ("CapacityProviderConfig", "PublishToLatestPublished"):
        managed.pop(key)
    # The profile's own settings: its name, and the stream lifetime that suits it.
    env_od, env_mi = (dict(f.pop("Environment")["Variables"]) for f in (on_demand, managed))
    assert (env_od.pop("DAGCAST_SSE_PROFILE"), env_mi.pop("DAGCAST_SSE_PROFILE")) == (
        "on-demand",
        "managed-instances",
    )
    assert env_od.pop("DAGCAST_MAX_STREAM_SECONDS") == {"Ref": "OnDemandMaxStreamSeconds"}
    assert env_mi.pop("DAGCAST_MAX_STREAM_SECONDS") == {"Ref": "MaxStreamSeconds"}
    assert env_od == env_mi
    differ = {k for k in on_demand.keys() | managed.keys() if on_demand.get(k) != managed.get(k)}
    assert differ == {"FunctionName", "MemorySize"}  # one runtime, one bundle (dagcast/deploy/bundle.py)
    assert managed["FunctionName"] == {"Fn::Sub": "dagcast-${Stage}-sse-mi"}  # its own name: see the template


@pytest.mark.parametrize("profile", sorted(STAGES))
def test_sam_translates_each_profile(profile: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    tpl = template()
    tpl["Resources"]["DagStateMachine"]["Properties"]["DefinitionUri"] = "s3://bucket/dag.asl.json"
    for name in ("SseFunction", "SseManagedFunction"):
        tpl["Resources"][name]["Properties"]["CodeUri"] = "s3://bucket/sse.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    params = {"Stage": "dev", **STAGES[profile].parameters()}
    out = transform(tpl, params, NoManagedPolicies())
    s = Stack("dev", tpl=out, **STAGES[profile].parameters())
    made = s.resources()
    fn = "SseFunction" if profile == "on-demand" else "SseManagedFunction"
    # SAM carries the function's condition to what it generates: the URL, its permissions, the role
    assert {n for n in made if n.startswith(fn)} >= {fn, f"{fn}Url", f"{fn}Role"}
    assert made[fn] == "AWS::Lambda::Function" and made[f"{fn}Url"] == "AWS::Lambda::Url"
    other = "SseManagedFunction" if fn == "SseFunction" else "SseFunction"
    assert not any(n.startswith(other) for n in made)
    props = s.props(fn)
    if fn == "SseManagedFunction":
        config = props["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
        assert config["CapacityProviderArn"] == {"Fn::GetAtt": ["SseCapacityProvider", "Arn"]}
        assert "ReservedConcurrentExecutions" not in props
    else:
        assert (
            s.text(props["ReservedConcurrentExecutions"]) == "100" and "CapacityProviderConfig" not in props
        )


def test_the_profile_defaults_are_the_templates():
    params = template()["Parameters"]
    assert params["SseProfile"]["Default"] == ON_DEMAND
    assert tuple(params["SseProfile"]["AllowedValues"]) == sse_profiles.PROFILES
    assert tuple(params["SseVpcEndpoints"]["AllowedValues"]) == sse_profiles.VPC_ENDPOINTS
    assert params["SseReservedConcurrency"]["Default"] == sse_profiles.RESERVED_CONCURRENCY
    assert params["SsePerEnvironmentConcurrency"]["Default"] == sse_profiles.PER_ENVIRONMENT_CONCURRENCY
    assert params["SseMaxVCpuCount"]["Default"] == sse_profiles.MAX_VCPUS
    for profile in STAGES.values():  # deploy passes only parameters the template has
        assert set(profile.parameters()) <= set(params)


# ------------------------------------------------------------------------ dagcast deploy --sse-profile


def dry_run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    from dagcast.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert main(["deploy", "--stage", "dev", "--dry-run", *argv]) == 0
    [sam] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ sam deploy")]
    return sam


def test_a_dry_run_shows_the_managed_instances_parameters(capsys, monkeypatch):
    sam = dry_run(
        [
            "--sse-profile",
            "managed-instances",
            "--sse-subnets",
            "subnet-0a,subnet-0b",
            "--sse-security-groups",
            "sg-0a",
            "--sse-concurrency",
            "32",
            "--sse-max-vcpus",
            "8",
        ],
        capsys,
        monkeypatch,
    )
    assert sam.endswith(
        " SseProfile=managed-instances SseSubnetIds=subnet-0a,subnet-0b SseSecurityGroupIds=sg-0a"
        " SsePerEnvironmentConcurrency=32 SseMaxVCpuCount=8 SseVpcEndpoints=existing"
    )


def test_a_dry_run_shows_the_endpoints_parameters_and_the_on_demand_cap(capsys, monkeypatch):
    sam = dry_run(
        [
            "--sse-profile",
            "managed-instances",
            "--sse-subnets",
            "subnet-0a",
            "--sse-security-groups",
            "sg-0a",
            "--sse-vpc-endpoints",
            "create",
            "--sse-vpc-id",
            "vpc-0a",
            "--sse-route-tables",
            "rtb-0a",
        ],
        capsys,
        monkeypatch,
    )
    assert sam.endswith(" SseVpcEndpoints=create SseVpcId=vpc-0a SseRouteTableIds=rtb-0a")
    assert dry_run(["--sse-reserved-concurrency", "40"], capsys, monkeypatch).endswith(
        " SseProfile=on-demand SseReservedConcurrency=40"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sse-profile", "managed-instances"], "--sse-profile managed-instances needs --sse-subnets"),
        (
            ["--sse-profile", "managed-instances", "--sse-subnets", "subnet-0a"],
            "needs --sse-security-groups",
        ),
        (["--sse-subnets", "subnet-0a"], "--sse-subnets does not apply to --sse-profile on-demand"),
        (
            [
                "--sse-profile",
                "managed-instances",
                "--sse-reserved-concurrency",
                "5",
                "--sse-subnets",
                "subnet-0a",
                "--sse-security-groups",
                "sg-0a",
            ],
            "--sse-reserved-concurrency does not apply to --sse-profile managed-instances",
        ),
        (
            [
                "--sse-profile",
                "managed-instances",
                "--sse-subnets",
                "subnet-0a",
                "--sse-security-groups",
                "sg-0a",
                "--sse-vpc-endpoints",
                "create",
                "--sse-vpc-id",
                "vpc-0a",
            ],
            "--sse-vpc-endpoints create needs --sse-route-tables",
        ),
        (
            [
                "--sse-profile",
                "managed-instances",
                "--sse-subnets",
                "subnet-0a",
                "--sse-security-groups",
                "sg-0a",
                "--sse-vpc-id",
                "vpc-0a",
            ],
            "--sse-vpc-id applies only with --sse-vpc-endpoints create",
        ),
        (
            [
                "--sse-profile",
                "managed-instances",
                "--sse-subnets",
                "sg-0a",
                "--sse-security-groups",
                "sg-0a",
            ],
            "--sse-subnets: 'sg-0a' is not a comma-separated list of subnet-… ids",
        ),
        (["--sse-reserved-concurrency", "0"], "--sse-reserved-concurrency must be at least 1"),
        (
            [
                "--sse-profile",
                "managed-instances",
                "--sse-subnets",
                "subnet-0a",
                "--sse-security-groups",
                "sg-0a",
                "--sse-concurrency",
                "65",
            ],
            "--sse-concurrency must be 1–64",
        ),
        (["--sse-profile", "fargate"], "invalid choice: 'fargate'"),
    ],
)
def test_a_profile_without_what_it_needs_is_a_usage_error(argv, message, capsys, monkeypatch):
    from dagcast.cli import main

    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        main(["deploy", "--stage", "dev", "--dry-run", "--region", "eu-west-1", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err, err


def test_destroy_takes_no_profile(capsys):
    from dagcast.cli import main

    with pytest.raises(SystemExit):
        main(["destroy", "--stage", "dev", "--sse-profile", "on-demand"])
    assert "unrecognized arguments: --sse-profile" in capsys.readouterr().err


def test_deploy_hands_the_profile_to_sam(tmp_path):
    lines: list[str] = []
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    deployer = Deployer("dev", "eu-west-1", tmp_path, dry_run=True, sse=MANAGED_STAGE, say=lines.append)
    params = deployer.parameters()
    assert {k: v for k, v in params.items() if k.startswith("Sse")} == MANAGED_STAGE.parameters()
    assert re.search(
        r"SseProfile=on-demand SseReservedConcurrency=100$",
        " ".join(
            f"{k}={v}" for k, v in Deployer("dev", "eu-west-1", tmp_path, dry_run=True).parameters().items()
        ),
    )
