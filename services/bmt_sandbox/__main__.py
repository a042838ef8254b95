"""`python -m bmt_sandbox`: run the sandbox payment gateway."""

from bmt_common.runner import serve
from bmt_sandbox.app import make_app
from bmt_sandbox.settings import SandboxSettings

settings = SandboxSettings()
serve("sandbox", settings, lambda: make_app(settings))
