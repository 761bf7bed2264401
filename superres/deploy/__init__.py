"""Deploying the function: what serverless.yml describes (deployment, project), the layer, the execution role's
policy, the checks before a deploy (offline and --cloud), the deploy itself on the SCF API, and the async policy."""

from .cam_policy import CI_ACTIONS, cam_policy
from .check import preflight_problems
from .deploy import Deployer, DeployError
from .deploy_config import AsyncPolicy, DeployConfigError, apply_async_policy
from .deployment import (
    Deployment,
    SelfTriggerError,
    environment_problems,
    overlap_message,
    refuse_self_trigger,
    self_trigger_problems,
)
from .project import Project, load_project

__all__ = [
    "CI_ACTIONS", "AsyncPolicy", "DeployConfigError", "DeployError", "Deployer", "Deployment", "Project",
    "SelfTriggerError", "apply_async_policy", "cam_policy", "environment_problems", "load_project",
    "overlap_message", "preflight_problems", "refuse_self_trigger", "self_trigger_problems",
]
