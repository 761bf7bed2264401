"""The CAM reads `superres check --cloud` makes (API 2019-01-16): GetRole, ListAttachedRolePolicies, GetPolicy,
served on the local cloud API's port. The roles and their policies are the local account's: `superres local`
creates SCF_ROLE with cam-policy.json attached unless told otherwise (tests build other states)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from .api import CAM, ApiError, action


@dataclass
class CamState:
    """Roles (name -> attached policy names) and policies (name -> document)."""

    roles: dict[str, list[str]] = field(default_factory=dict)
    policies: dict[str, dict[str, object]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_role(self, role: str, policies: dict[str, dict[str, object]] | None = None) -> None:
        with self._lock:
            self.roles.setdefault(role, [])
            for name, document in (policies or {}).items():
                self.policies[name] = document
                if name not in self.roles[role]:
                    self.roles[role].append(name)

    def policy_id(self, name: str) -> int:
        return 100000 + sorted(self.policies).index(name)


class CamApi:
    def __init__(self, state: CamState) -> None:
        self.state = state

    @action(CAM, "GetRole")
    def get_role(self, params: dict) -> dict:
        name = self._role(params)
        return {"RoleInfo": {"RoleId": str(abs(hash(name)) % 10**10), "RoleName": name, "RoleType": "user",
                             "PolicyDocument": json.dumps({"version": "2.0", "statement": [
                                 {"action": "name/sts:AssumeRole", "effect": "allow",
                                  "principal": {"service": ["scf.qcloud.com"]}}]}),
                             "AddTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "ConsoleLogin": 0}}

    @action(CAM, "ListAttachedRolePolicies")
    def list_attached_role_policies(self, params: dict) -> dict:
        names = self.state.roles[self._role(params)]
        return {"List": [{"PolicyId": self.state.policy_id(n), "PolicyName": n, "PolicyType": "User",
                          "CreateMode": 1} for n in names], "TotalNum": len(names)}

    @action(CAM, "GetPolicy")
    def get_policy(self, params: dict) -> dict:
        wanted = params.get("PolicyId")
        for name in sorted(self.state.policies):
            if self.state.policy_id(name) == wanted:
                return {"PolicyName": name, "Type": 1, "PolicyDocument": json.dumps(self.state.policies[name])}
        raise ApiError("ResourceNotFound.PolicyIdNotFound", f"policy {wanted!r} not found")

    def _role(self, params: dict) -> str:
        name = str(params.get("RoleName") or "")
        if name not in self.state.roles:
            raise ApiError("InvalidParameter.RoleNotExist", f"role {name!r} not found")
        return name
