"""template.yaml read and resolved offline, as CloudFormation would resolve it for a stage: what the
infrastructure and deploy tests check the code, the Chalice config and `dagcast deploy` against."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from dagcast.deploy.regions import partition
from dagcast.deploy.stage import FUNCTION_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
# Ref AWS::NoValue: the property (or list item) it stands for is left out, as CloudFormation does.
NO_VALUE = object()


def template(path: Path | None = None) -> dict[str, Any]:
    decoded, errors = decode_str((path or ROOT / "template.yaml").read_text())
    assert not errors, errors
    parsed: dict[str, Any] = json.loads(json.dumps(decoded))
    return parsed


class Stack:
    """template.yaml resolved offline for one stage, as CloudFormation would: the parameters
    `dagcast deploy` passes (the stage, the Chalice function ARNs) and the defaults, the pseudo
    parameters, the Conditions (a resource whose condition is false is not in the stack: a Ref or
    GetAtt of it raises, and Fn::If takes the branch its condition picks), and Ref/GetAtt of the
    resource types the template uses. Anything else (a new resource type, a missing resource)
    raises, so a test that resolves it fails."""

    def __init__(
        self,
        stage: str,
        region: str = "REGION",
        account: str = "ACCOUNT",
        tpl: dict[str, Any] | None = None,
        **parameters: str,
    ) -> None:
        self.tpl = tpl or template()
        self.stage, self.region, self.account = stage, region, account
        self.params = {n: str(p["Default"]) for n, p in self.tpl["Parameters"].items() if "Default" in p}
        self.params["Stage"] = stage
        self.params.update(
            {
                param: f"arn:aws:lambda:{region}:{account}:function:dagcast-{stage}-{fn}"
                for param, fn in FUNCTION_PARAMETERS.items()
            }
        )
        self.params.update(parameters)
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": partition(region),
            "AWS::StackName": f"dagcast-{stage}",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def condition(self, name: str) -> bool:
        return bool(self._holds(self.tpl["Conditions"][name]))

    def _holds(self, expr: Any) -> Any:
        """A condition's value: Fn::Equals / And / Or / Not / Condition over resolved values."""
        [(fn, arg)] = expr.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            return self(arg[0]) == self(arg[1])
        if fn == "Fn::And":
            return all(self._holds(c) for c in arg)
        if fn == "Fn::Or":
            return any(self._holds(c) for c in arg)
        if fn == "Fn::Not":
            return not self._holds(arg[0])
        raise KeyError(f"{fn} in a condition is not modelled by Stack")

    def exists(self, name: str) -> bool:
        """The resource is in the stack: it has no Condition, or its condition holds."""
        cond = self.tpl["Resources"][name].get("Condition")
        return cond is None or self.condition(cond)

    def resources(self) -> dict[str, str]:
        """The resources the stack holds for these parameters: name → type."""
        return {n: str(r["Type"]) for n, r in self.tpl["Resources"].items() if self.exists(n)}

    def resource(self, name: str) -> tuple[str, dict[str, Any]]:
        res = self.tpl["Resources"][name]
        if not self.exists(name):
            raise KeyError(f"{name} is not in the stack: its condition {res['Condition']} is false")
        return str(res["Type"]), dict(res.get("Properties", {}))

    def _arn(self, service: str, rest: str) -> str:
        return f"arn:{partition(self.region)}:{service}:{self.region}:{self.account}:{rest}"

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        kind, props = self.resource(name)
        if kind == "AWS::Lambda::CapacityProvider":
            return self.text(props["CapacityProviderName"])
        if kind == "AWS::EC2::VPCEndpoint":
            return f"vpce-of-{name}"
        if kind == "AWS::EC2::SecurityGroup":
            return f"sg-of-{name}"
        if kind == "AWS::DynamoDB::Table":
            return self.text(props["TableName"])
        if kind == "AWS::Serverless::StateMachine":
            return self._arn("states", "stateMachine:" + self.text(props["Name"]))
        if kind == "AWS::Serverless::Function":
            return self.text(props["FunctionName"])
        if kind == "AWS::SecretsManager::Secret":
            return self._arn("secretsmanager", f"secret:{self.text(props['Name'])}-AbCdEf")
        if kind == "AWS::KMS::Key":
            return f"key-id-of-{name}"
        if kind == "AWS::KMS::Alias":
            return self.text(props["AliasName"])
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.text(props['QueueName'])}"
        if kind == "AWS::Logs::LogGroup":
            return self.text(props["LogGroupName"])
        if kind == "AWS::SNS::Topic":
            return self._arn("sns", self.text(props["TopicName"]))
        raise KeyError(f"Ref of {kind} ({name}) is not modelled by Stack")

    def getatt(self, name: str, attr: str) -> str:
        if name.endswith("Url") and attr == "FunctionUrl":  # SAM's <Function>Url of a FunctionUrlConfig
            kind, props = self.resource(name[: -len("Url")])
            assert kind == "AWS::Serverless::Function" and "FunctionUrlConfig" in props, name
            return f"https://{name.lower()}-id.lambda-url.{self.region}.on.aws/"
        kind, props = self.resource(name)
        if kind == "AWS::DynamoDB::Table" and attr in ("Arn", "StreamArn"):
            arn = self._arn("dynamodb", "table/" + self.ref(name))
            return arn if attr == "Arn" else arn + "/stream/2025-01-01T00:00:00.000"
        if kind == "AWS::SQS::Queue" and attr in ("Arn", "QueueName"):
            queue = self.text(props["QueueName"])
            return self._arn("sqs", queue) if attr == "Arn" else queue
        if kind == "AWS::KMS::Key" and attr == "Arn":
            return self._arn("kms", "key/" + self.ref(name))
        if kind == "AWS::Serverless::Function" and attr == "Arn":
            return self._arn("lambda", "function:" + self.ref(name))
        if kind == "AWS::Lambda::CapacityProvider" and attr == "Arn":
            return self._arn("lambda", "capacity-provider:" + self.ref(name))
        if kind == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:aws:iam::{self.account}:role/{self.stage}-{name}"
        if kind == "AWS::Logs::LogGroup" and attr == "Arn":
            return self._arn("logs", f"log-group:{self.ref(name)}:*")
        raise KeyError(f"GetAtt {name}.{attr} ({kind}) is not modelled by Stack")

    def sub(self, text: str, names: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in names:
                return self.text(names[inner])
            if "." in inner:
                return self.getatt(*inner.split(".", 1))
            return self.ref(inner)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in map(self, value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(fn, arg)] = value.items()
            if fn == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.listed(arg)
            if fn == "Fn::If":
                return self(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(name, attr)
            if fn == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, names)
            if fn == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if fn == "Fn::Split":
                return self.text(arg[1]).split(arg[0])
            if fn == "Fn::Join":
                return arg[0].join(self.text(v) for v in self(arg[1]))
            assert not fn.startswith("Fn::"), f"{fn} is not modelled by Stack"
        return {k: v for k, v in ((k, self(v)) for k, v in value.items()) if v is not NO_VALUE}

    def listed(self, name: str) -> Any:
        """A Ref: a CommaDelimitedList parameter is a list (empty when its value is), the rest ref()."""
        spec = self.tpl["Parameters"].get(name, {})
        if spec.get("Type") == "CommaDelimitedList":
            return [v for v in self.params[name].split(",") if v] if self.params[name] else [""]
        return self.ref(name)

    def text(self, value: Any) -> str:
        return str(self(value))

    def output(self, key: str) -> str:
        return self.text(self.tpl["Outputs"][key]["Value"])

    def props(self, name: str) -> dict[str, Any]:
        return self.resource(name)[1]
