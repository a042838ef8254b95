"""`python -m bmt_user`: run the user service."""

from bmt_common.runner import serve
from bmt_user.app import make_app
from bmt_user.settings import UserSettings

settings = UserSettings()
serve("user", settings, lambda: make_app(settings))
